import { join, resolve } from "node:path";
import { isLoopback, type ResolvedServeConfig } from "../config/mod.ts";
import { type Db, migrate, openDb } from "../db/mod.ts";
import { type Collector, startCollector } from "../ingest/mod.ts";
import { logger } from "../log/mod.ts";
import { createHttpHandler, serveStdio, type ToolDeps } from "../mcp/mod.ts";
import { createDashboardHandler } from "../dashboard/mod.ts";
import { type Monitor, startMonitor } from "../monitor/mod.ts";
import { type EmbeddedBroker, startEmbeddedBroker } from "../mqtt/mod.ts";
import { openResultStore } from "../results/mod.ts";
import { createSandbox } from "../sandbox/mod.ts";

const log = logger("serve");

/** How the server talks to MCP clients. */
export type ServeMode = "http" | "https" | "stdio";

/** Options of `startServer`. */
export interface StartServerOptions {
  mode: ServeMode;
  /** Sandbox override (tests); default: `createSandbox(config.sandbox)`. */
  sandbox?: ToolDeps["sandbox"] | null;
}

/** A running server and everything it started. */
export interface RunningServer {
  /** The MCP endpoint (`…/mcp`) of the HTTP or HTTPS listener; undefined in stdio mode without one. */
  readonly mcpUrl: string | undefined;
  /** Public base URL used in file links (SERVER_URL, or the listener's when unset). */
  readonly serverUrl: string;
  /** True when the collector, monitor (and maybe the broker) run in this process on PGlite. */
  readonly embedded: boolean;
  /** The embedded broker's URL, when one runs. */
  readonly brokerUrl: string | undefined;
  /** Resolves when a stdio client closed its end; never resolves in HTTP modes. */
  readonly clientGone: Promise<void>;
  /** Stops everything in reverse order: listeners, collector (flushing), monitor, broker, db. */
  close(): Promise<void>;
}

/** A start-up failure a person can fix; `main.ts` prints its message without a stack. */
export class StartupError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "StartupError";
  }
}

type Handler = (req: Request) => Promise<Response>;

interface Closer {
  name: string;
  /** Lower closes first. */
  order: number;
  fn: () => Promise<void> | void;
}

const ORDER = {
  stdio: 0,
  listener: 1,
  handOver: 2,
  collector: 3,
  monitor: 4,
  broker: 5,
  db: 6,
  lock: 7,
};

/** Longest wait at start-up for the collector's subscription before serving anyway. */
const SUBSCRIBE_WAIT_MS = 15_000;

/** Longest wait at a stop for the collector to take what the embedded broker holds for it. */
const HAND_OVER_MS = 10_000;

function listen(
  opts: { hostname: string; port: number; cert?: string; key?: string },
  handler: () => Handler | undefined,
  what: string,
  variable = "PORT",
): Deno.HttpServer<Deno.NetAddr> {
  try {
    return Deno.serve({
      ...opts,
      onListen: () => {}, // the default prints to stdout, which stdio mode reserves for MCP
      onError: (error) => {
        log.error("request failed", { error });
        return new Response('{"error":"Internal server error"}', {
          status: 500,
          headers: { "content-type": "application/json" },
        });
      },
    }, (req) => {
      const h = handler();
      return h ? h(req) : Promise.resolve(
        new Response('{"error":"Starting, try again in a moment"}', {
          status: 503,
          headers: { "content-type": "application/json", "retry-after": "1" },
        }),
      );
    });
  } catch (error) {
    if (error instanceof Deno.errors.AddrInUse) {
      throw new StartupError(
        `Cannot listen on ${opts.hostname}:${opts.port} for ${what}: the port is in use. ` +
          `Stop the other server or choose another port with ${variable}.`,
        { cause: error },
      );
    }
    if (error instanceof Deno.errors.AddrNotAvailable) {
      throw new StartupError(
        `Cannot listen on ${opts.hostname}:${opts.port} for ${what}: no such address on this machine (check HOST).`,
        { cause: error },
      );
    }
    throw error;
  }
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
}

async function readTls(file: string, variable: string): Promise<string> {
  try {
    return await Deno.readTextFile(file);
  } catch (error) {
    throw new StartupError(`Cannot read ${variable} "${file}": ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * Starts `deno task serve`: opens and migrates the database, the result store and the sandbox,
 * the HTTP (and HTTPS) listeners or the stdio transport, and — when no DATABASE_URL is set — the
 * collector and the monitor in-process, with the embedded MQTT broker when no MQTT URL is set.
 * On failure everything already started is stopped again before the error is rethrown.
 */
export async function startServer(
  config: ResolvedServeConfig,
  opts: StartServerOptions,
): Promise<RunningServer> {
  const closers: Closer[] = [];
  const closeAll = async () => {
    // Stop taking requests first, then flush the collector into the database, then the rest.
    for (const c of closers.splice(0).sort((a, b) => a.order - b.order)) {
      try {
        await c.fn();
      } catch (error) {
        log.warn(`stopping ${c.name} failed`, { error });
      }
    }
  };
  try {
    return await start(config, opts, closers, closeAll);
  } catch (error) {
    await closeAll();
    throw error;
  }
}

async function start(
  config: ResolvedServeConfig,
  opts: StartServerOptions,
  closers: Closer[],
  closeAll: () => Promise<void>,
): Promise<RunningServer> {
  const embedded = config.databaseUrl === undefined;
  const dataDir = resolve(config.dataDir);
  try {
    await Deno.mkdir(dataDir, { recursive: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new StartupError(
        `DATA_DIR "${config.dataDir}" is not writable for this process: deno task serve may ` +
          "write only to the DATA_DIR it reads from the environment or .env (see README.md, " +
          `Configuration), or run deno run --allow-write=${dataDir} … main.ts`,
        { cause: error },
      );
    }
    throw new StartupError(
      `Cannot create DATA_DIR "${config.dataDir}": ${(error as Error).message}`,
      { cause: error },
    );
  }

  if (embedded) {
    // PGlite belongs to one process: a second server on the same DATA_DIR would corrupt it.
    const lock = await Deno.open(join(dataDir, "serve.lock"), { create: true, write: true });
    if (!await lock.tryLock(true)) {
      lock.close();
      throw new StartupError(
        `Another server already uses DATA_DIR "${config.dataDir}" (embedded database). ` +
          "Stop it, point DATA_DIR elsewhere, or set DATABASE_URL.",
      );
    }
    closers.push({ name: "data lock", order: ORDER.lock, fn: () => lock.close() });
  }

  // Listeners first: a busy port fails fast, and port 0 is resolved before links are signed.
  const current: { handler?: Handler } = {};
  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  let mcpUrl: string | undefined;
  let publicUrl: string | undefined;
  if (opts.mode === "https") {
    if (!config.tlsCertFile || !config.tlsKeyFile) {
      throw new StartupError("--https needs TLS_CERT_FILE and TLS_KEY_FILE (PEM files)");
    }
    const cert = await readTls(config.tlsCertFile, "TLS_CERT_FILE");
    const key = await readTls(config.tlsKeyFile, "TLS_KEY_FILE");
    let tls: Deno.HttpServer<Deno.NetAddr>;
    try {
      tls = listen(
        { hostname: config.host, port: config.httpsPort, cert, key },
        () => current.handler,
        "HTTPS",
        "HTTPS_PORT",
      );
    } catch (error) {
      if (error instanceof StartupError) throw error;
      throw new StartupError(
        `Cannot start HTTPS with TLS_CERT_FILE/TLS_KEY_FILE: ${(error as Error).message}`,
        { cause: error },
      );
    }
    servers.push(tls);
    closers.push({ name: "HTTPS listener", order: ORDER.listener, fn: () => tls.shutdown() });
    mcpUrl = `https://${urlHost(config.host)}:${tls.addr.port}/mcp`;
    publicUrl = `https://${urlHost(config.host)}:${tls.addr.port}`;
  }
  // With --https, plain HTTP stays on loopback so tokens never cross the network unencrypted.
  const httpHost = opts.mode === "https" && !isLoopback(config.host) ? "127.0.0.1" : config.host;
  let http: Deno.HttpServer<Deno.NetAddr> | undefined;
  try {
    http = listen({ hostname: httpHost, port: config.port }, () => current.handler, "HTTP");
  } catch (error) {
    if (opts.mode !== "stdio") throw error;
    log.warn("file links will not work: HTTP listener not started", {
      reason: (error as Error).message,
    });
  }
  if (http) {
    const h = http;
    servers.push(h);
    closers.push({ name: "HTTP listener", order: ORDER.listener, fn: () => h.shutdown() });
    mcpUrl ??= `http://${urlHost(httpHost)}:${h.addr.port}/mcp`;
    publicUrl ??= `http://${urlHost(httpHost)}:${h.addr.port}`;
  }
  const defaultUrl = `http://${urlHost(config.host)}:${config.port}`;
  const serverUrl = config.serverUrl === defaultUrl && publicUrl ? publicUrl : config.serverUrl;
  const cfg: ResolvedServeConfig = { ...config, serverUrl };
  if (config.serverUrl === defaultUrl && ["0.0.0.0", "::"].includes(config.host)) {
    log.warn("download links point at loopback: set SERVER_URL to the address clients use", {
      serverUrl,
    });
  }

  let db: Db;
  try {
    db = await openDb({ databaseUrl: config.databaseUrl, dataDir, appName: "ambient-serve" });
  } catch (error) {
    throw new StartupError((error as Error).message, { cause: error });
  }
  closers.push({ name: "database", order: ORDER.db, fn: () => db.close() });
  await migrate(db);

  // With PostgreSQL every instance shares results and links; the embedded stack keeps them on disk.
  const { store: results, location: resultsIn } = await openResultStore(db, {
    dataDir,
    serverUrl,
    ttlH: config.query.cacheTtlH,
    maxBytes: config.query.cacheMaxBytes,
    linkSecret: config.linkSecret,
  });
  const sandbox = opts.sandbox === null
    ? undefined
    : opts.sandbox ?? await createSandbox(config.sandbox, { workDir: join(dataDir, "sandbox") });
  const deps: ToolDeps = { db, config: cfg, results, sandbox };
  // Running sandbox jobs are stopped first on shutdown, so their requests end at once.
  if (sandbox?.close) {
    closers.push({
      name: "sandbox",
      order: ORDER.stdio,
      fn: () => sandbox.close?.(),
    });
  }

  let broker: EmbeddedBroker | undefined;
  let collector: Collector | undefined;
  let monitor: Monitor | undefined;
  if (embedded) {
    let mqttUrl = config.collector.mqtt.url;
    let protocolVersion: 4 | undefined;
    if (!mqttUrl) {
      try {
        broker = await startEmbeddedBroker({
          ...config.mqttListen,
          ...config.mqttBroker,
          username: config.collector.mqtt.username,
          password: config.collector.mqtt.password,
          reservedClientIds: [config.collector.mqtt.clientId],
          firstSubscriber: config.collector.mqtt.clientId,
        });
      } catch (error) {
        // The broker's message names the address and what to do (MQTT_LISTEN / MQTT_URL).
        throw new StartupError((error as Error).message, { cause: error });
      }
      const b = broker;
      closers.push({ name: "MQTT broker", order: ORDER.broker, fn: () => b.close() });
      mqttUrl = b.localUrl;
      // The embedded broker (aedes) speaks MQTT 3.1.1 only.
      protocolVersion = 4;
    }
    const c = await startCollector(db, {
      ...config.collector,
      dataDir,
      mqtt: { ...config.collector.mqtt, url: mqttUrl, protocolVersion },
    });
    collector = c;
    closers.push({ name: "collector", order: ORDER.collector, fn: () => c.stop() });
    if (broker) {
      // Devices may connect once the collector has subscribed (see `firstSubscriber`).
      if (!await broker.opened(SUBSCRIBE_WAIT_MS)) {
        log.warn(
          "The collector has not subscribed to the embedded broker yet; devices are refused " +
            "until it has",
          { waited_ms: SUBSCRIBE_WAIT_MS },
        );
      }
      // The embedded broker keeps messages in memory: what it acknowledged to a device must be in
      // the collector's journal before the collector stops taking messages.
      const b = broker;
      const clientId = config.collector.mqtt.clientId;
      closers.push({
        name: "MQTT hand-over",
        order: ORDER.handOver,
        fn: async () => {
          const left = await b.handOver([clientId], HAND_OVER_MS);
          if (left > 0) {
            log.warn("The collector did not take every message the embedded broker held", {
              messages: left,
              waited_ms: HAND_OVER_MS,
            });
          }
        },
      });
    }
    // Links in notifications follow the listener's real address when SERVER_URL is not set.
    const monitorUrl = config.monitor.serverUrl === config.serverUrl
      ? serverUrl
      : config.monitor.serverUrl;
    const m = await startMonitor(db, { ...config.monitor, serverUrl: monitorUrl });
    monitor = m;
    closers.push({ name: "monitor", order: ORDER.monitor, fn: () => m.stop() });
  }

  current.handler = createHttpHandler(deps, {
    ports: servers.map((s) => s.addr.port),
    health: () => ({
      mode: embedded ? "embedded" : "external",
      results: resultsIn,
      ...(collector ? { collector: collector.stats() } : {}),
      ...(broker ? { broker: broker.url } : {}),
      monitor: monitor ? "running" : "not in this process",
    }),
    routes: createDashboardHandler({
      db,
      config: cfg,
      collector: collector ? () => ({ ...collector!.stats() }) : undefined,
    }),
  });

  let clientGone: Promise<void> = new Promise(() => {});
  if (opts.mode === "stdio") {
    const s = await serveStdio(deps);
    closers.push({ name: "stdio", order: ORDER.stdio, fn: () => s.close() });
    clientGone = s.closed;
  }

  let closing: Promise<void> | undefined;
  return {
    mcpUrl: opts.mode === "stdio" && !http ? undefined : mcpUrl,
    serverUrl,
    embedded,
    brokerUrl: broker?.url,
    clientGone,
    close: () => closing ??= closeAll(),
  };
}
