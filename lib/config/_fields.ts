// Parsing of the environment variables shared by several entrypoints. Each helper reads one
// variable (or its seed alias) and throws a ConfigError naming it when the value is bad.
import { z } from "zod";

/** Environment as a plain record, e.g. `Deno.env.toObject()`. */
export type Env = Record<string, string | undefined>;

/** A configuration value that stops start-up; the message names the variable. */
export class ConfigError extends Error {
  /** The variable at fault. */
  readonly variable: string;
  constructor(variable: string, message: string) {
    super(`Invalid configuration: ${variable} ${message}`);
    this.name = "ConfigError";
    this.variable = variable;
  }
}

function raw(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === "" ? undefined : t;
}

/** Reads a string variable, trimmed; empty counts as unset. */
export function str(env: Env, name: string): string | undefined {
  return raw(env, name);
}

/** Reads a number variable with bounds. */
export function num(
  env: Env,
  name: string,
  opts: { default: number; min?: number; max?: number; integer?: boolean },
): number {
  const v = raw(env, name);
  if (v === undefined) return opts.default;
  let schema = z.coerce.number({ error: "must be a finite number" })
    .refine(Number.isFinite, "must be a finite number");
  if (opts.integer) schema = schema.refine(Number.isInteger, "must be a whole number");
  if (opts.min !== undefined) {
    schema = schema.refine((n) => n >= opts.min!, `must be ≥ ${opts.min}`);
  }
  if (opts.max !== undefined) {
    schema = schema.refine((n) => n <= opts.max!, `must be ≤ ${opts.max}`);
  }
  const r = schema.safeParse(v);
  if (!r.success) throw new ConfigError(name, `${r.error.issues[0].message}, got "${v}"`);
  return r.data;
}

/** Reads a TCP port. */
export function port(env: Env, name: string, fallback: number): number {
  return num(env, name, { default: fallback, min: 0, max: 65535, integer: true });
}

/** Reads one of a fixed set of words. */
export function oneOf<T extends string>(
  env: Env,
  name: string,
  values: readonly T[],
  fallback: T,
): T {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  const lower = v.toLowerCase() as T;
  if (!values.includes(lower)) {
    throw new ConfigError(name, `must be one of ${values.join(", ")}, got "${v}"`);
  }
  return lower;
}

/** Reads a URL with one of the allowed protocols. */
export function url(env: Env, name: string, protocols: readonly string[]): URL | undefined {
  const v = raw(env, name);
  if (v === undefined) return undefined;
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new ConfigError(name, `must be a URL (${protocols.join(" or ")}), got "${redact(v)}"`);
  }
  if (!protocols.includes(u.protocol)) {
    throw new ConfigError(
      name,
      `must use ${protocols.join(" or ")}, got "${u.protocol}" in "${redact(v)}"`,
    );
  }
  return u;
}

/** Reads `host:port`, e.g. `0.0.0.0:1883`. */
export function hostPort(env: Env, name: string, fallback: string): { host: string; port: number } {
  const v = raw(env, name) ?? fallback;
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) > 65535) {
    throw new ConfigError(name, `must be host:port such as 0.0.0.0:1883, got "${v}"`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) };
}

/** Reads a boolean flag (`1/0`, `true/false`, `yes/no`). */
export function bool(env: Env, name: string, fallback: boolean): boolean {
  const v = raw(env, name);
  if (v === undefined) return fallback;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new ConfigError(name, `must be true or false, got "${v}"`);
}

/** Hides the password of a connection string so it can be printed. */
export function redact(connection: string): string {
  return connection.replace(/\/\/([^:/@]*):([^@]*)@/, "//$1:***@");
}

/**
 * `DATABASE_URL`, or the seed's `DB_HOST`/`DB_PORT`/`DB_USER`/`DB_PASSWORD`/`DB_NAME`.
 * Undefined means "embedded PGlite".
 */
export function databaseUrl(env: Env): string | undefined {
  const u = url(env, "DATABASE_URL", ["postgres:", "postgresql:"]);
  if (u) return u.toString();
  const host = str(env, "DB_HOST");
  if (!host) return undefined;
  const p = port(env, "DB_PORT", 5432);
  const user = encodeURIComponent(str(env, "DB_USER") ?? "postgres");
  const pw = str(env, "DB_PASSWORD");
  const name = encodeURIComponent(str(env, "DB_NAME") ?? "postgres");
  const auth = pw === undefined ? user : `${user}:${encodeURIComponent(pw)}`;
  const h = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
  const built = `postgres://${auth}@${h}:${p}/${name}`;
  try {
    new URL(built);
  } catch {
    throw new ConfigError("DB_HOST", `does not form a valid address, got "${host}"`);
  }
  return built;
}

/** MQTT connection settings; `url` undefined means "embedded broker". */
export interface MqttSettings {
  url: string | undefined;
  username: string | undefined;
  password: string | undefined;
  clientId: string;
  sharedGroup: string | undefined;
  /**
   * MQTT protocol the collector speaks: unset = MQTT 5, falling back to 3.1.1 for brokers that
   * refuse it; 4 = MQTT 3.1.1 at once (the embedded broker, which speaks only 3.1.1).
   */
  protocolVersion?: 4;
}

/**
 * `MQTT_URL` or the seed's `MQTT_BROKER` + `MQTT_PORT`, plus credentials and session id. The
 * default `MQTT_CLIENT_ID` is `ambient-<role>-<hostname>`: `collector` for `deno task collect`,
 * `serve` for the collector embedded in `deno task serve`, so the two never share a session.
 */
export function mqttSettings(env: Env, hostname: string, role = "collector"): MqttSettings {
  const protocols = ["mqtt:", "mqtts:", "tcp:", "ssl:", "ws:", "wss:"];
  let u = url(env, "MQTT_URL", protocols)?.toString();
  if (!u) {
    const broker = str(env, "MQTT_BROKER");
    if (broker) {
      const p = port(env, "MQTT_PORT", 1883);
      const full = /^[a-z]+:\/\//.test(broker) ? broker : `mqtt://${broker}:${p}`;
      u = url({ MQTT_BROKER: full }, "MQTT_BROKER", protocols)!.toString();
    }
  }
  const group = str(env, "MQTT_SHARED_GROUP");
  if (group !== undefined && !/^[A-Za-z0-9_-]{1,64}$/.test(group)) {
    throw new ConfigError("MQTT_SHARED_GROUP", `must match [A-Za-z0-9_-]{1,64}, got "${group}"`);
  }
  const clientId = str(env, "MQTT_CLIENT_ID") ??
    `ambient-${role}-${hostname.replace(/[^A-Za-z0-9_-]/g, "-")}`.slice(0, 64);
  return {
    url: u,
    username: str(env, "MQTT_USERNAME"),
    password: str(env, "MQTT_PASSWORD"),
    clientId,
    sharedGroup: group,
  };
}

/** `DATA_DIR`, default `./data`. */
export function dataDir(env: Env): string {
  return str(env, "DATA_DIR") ?? "./data";
}

/** The machine's host name, or `localhost` when it cannot be read. */
export function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    return "localhost";
  }
}
