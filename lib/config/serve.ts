import {
  bool,
  ConfigError,
  dataDir,
  type Env,
  hostPort,
  num,
  oneOf,
  port,
  str,
  url,
} from "./_fields.ts";
import { loadCollectorConfig, type ResolvedCollectorConfig } from "./collector.ts";
import { loadMonitorConfig, type ResolvedMonitorConfig } from "./monitor.ts";

/** Sandbox engines; `auto` picks docker, then bwrap. */
export type SandboxEngineName = "auto" | "docker" | "bwrap" | "off";

/** Everything `main.ts` needs, fully resolved (including the in-process collector and monitor). */
export interface ResolvedServeConfig {
  databaseUrl: string | undefined;
  dataDir: string;
  host: string;
  port: number;
  httpsPort: number;
  tlsCertFile: string | undefined;
  tlsKeyFile: string | undefined;
  /** Public base URL for links, without a trailing slash. */
  serverUrl: string;
  authToken: string | undefined;
  /** `LINK_SECRET`: signs download links on every instance alike (else a stored secret). */
  linkSecret: string | undefined;
  /** Embedded broker listen address (only used when no MQTT URL is configured). */
  mqttListen: { host: string; port: number };
  /** Embedded broker: per-device accounts and TLS (its service account is the collector's). */
  mqttBroker: {
    deviceCredentialsFile: string | undefined;
    tlsCertFile: string | undefined;
    tlsKeyFile: string | undefined;
    allowInsecure: boolean;
  };
  query: {
    timeoutS: number;
    maxRows: number;
    cacheTtlH: number;
    cacheMaxBytes: number;
    /** Database-side bounds of one SQL-tool query, in MB (README "Safe SQL"). */
    workMemMb: number;
    tempFileMb: number;
    maxMemoryMb: number;
  };
  sandbox: {
    engine: SandboxEngineName;
    image: string;
    memoryMb: number;
    timeoutS: number;
  };
  collector: ResolvedCollectorConfig;
  monitor: ResolvedMonitorConfig;
}

/** True for 127.0.0.0/8, ::1 and localhost. */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Parses the server's variables (see DESIGN.md), throwing `ConfigError` on a bad value.
 * `ALLOW_INSECURE_NON_LOOPBACK=true` is the explicit opt-out for a non-loopback HOST without
 * MCP_AUTH_TOKEN.
 */
export function loadServeConfig(env: Env): ResolvedServeConfig {
  const host = str(env, "HOST") ?? "127.0.0.1";
  const p = port(env, "PORT", 8000);
  const authToken = str(env, "MCP_AUTH_TOKEN");
  if (authToken !== undefined && authToken.length < 16) {
    throw new ConfigError("MCP_AUTH_TOKEN", "must be at least 16 characters long");
  }
  if (!isLoopback(host) && !authToken && !bool(env, "ALLOW_INSECURE_NON_LOOPBACK", false)) {
    throw new ConfigError(
      "HOST",
      `is "${host}", which is reachable from other machines: set MCP_AUTH_TOKEN ` +
        "(or ALLOW_INSECURE_NON_LOOPBACK=true to accept the risk)",
    );
  }
  const linkSecret = str(env, "LINK_SECRET");
  if (linkSecret !== undefined && linkSecret.length < 32) {
    throw new ConfigError("LINK_SECRET", "must be at least 32 characters long");
  }
  const cert = str(env, "TLS_CERT_FILE");
  const key = str(env, "TLS_KEY_FILE");
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(cert ? "TLS_KEY_FILE" : "TLS_CERT_FILE", "must be set with its pair");
  }
  const urlHost = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  const serverUrl = url(env, "SERVER_URL", ["http:", "https:"])?.toString().replace(/\/+$/, "") ??
    `http://${urlHost}:${p}`;
  return {
    databaseUrl: loadCollectorConfig(env).databaseUrl,
    dataDir: dataDir(env),
    host,
    port: p,
    httpsPort: port(env, "HTTPS_PORT", 8001),
    tlsCertFile: cert,
    tlsKeyFile: key,
    serverUrl,
    authToken,
    linkSecret,
    mqttListen: hostPort(env, "MQTT_LISTEN", "127.0.0.1:1883"),
    mqttBroker: {
      deviceCredentialsFile: str(env, "MQTT_DEVICE_CREDENTIALS_FILE"),
      tlsCertFile: str(env, "MQTT_TLS_CERT_FILE"),
      tlsKeyFile: str(env, "MQTT_TLS_KEY_FILE"),
      allowInsecure: bool(env, "ALLOW_INSECURE_NON_LOOPBACK", false),
    },
    query: {
      timeoutS: num(env, "QUERY_TIMEOUT_S", { default: 10, min: 0.1, max: 3600 }),
      maxRows: num(env, "QUERY_MAX_ROWS", { default: 100000, min: 1, integer: true }),
      cacheTtlH: num(env, "QUERY_CACHE_TTL_H", { default: 24, min: 0.001 }),
      cacheMaxBytes: num(env, "QUERY_CACHE_MAX_MB", { default: 1024, min: 1 }) * 1024 * 1024,
      workMemMb: num(env, "QUERY_WORK_MEM_MB", { default: 16, min: 1, max: 4096 }),
      tempFileMb: num(env, "QUERY_TEMP_FILE_MB", { default: 256, min: 0, max: 1048576 }),
      maxMemoryMb: num(env, "QUERY_MAX_MEMORY_MB", { default: 256, min: 32, max: 1048576 }),
    },
    sandbox: {
      engine: oneOf(env, "SANDBOX_ENGINE", ["auto", "docker", "bwrap", "off"] as const, "auto"),
      image: str(env, "SANDBOX_IMAGE") ?? str(env, "DOCKER_IMAGE") ?? "ambient-sensors-sandbox",
      memoryMb: num(env, "SANDBOX_MEMORY_MB", { default: 128, min: 32, integer: true }),
      timeoutS: num(env, "SANDBOX_TIMEOUT_S", { default: 30, min: 1, max: 3600 }),
    },
    collector: loadCollectorConfig(env, { role: "serve" }),
    monitor: loadMonitorConfig({ ...env, SERVER_URL: env.SERVER_URL ?? serverUrl }),
  };
}
