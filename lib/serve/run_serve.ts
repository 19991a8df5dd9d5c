import { basename, resolve } from "node:path";
import {
  ConfigError,
  type Env,
  type LoadedEnv,
  loadServeConfig,
  loadSettings,
  redact,
} from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { EXIT, permissionFlags, writeBrokerFile } from "../process/mod.ts";
import { claudeDesktopConfig } from "./claude_desktop_config.ts";
import { parseFlags, SERVE_HELP } from "./parse_flags.ts";
import { type RunningServer, startServer, StartupError } from "./start_server.ts";

const log = logger("serve");
const encoder = new TextEncoder();

function stderr(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text + "\n"));
}

/** Where `runServe` gets what it needs from the process (so tests can pass their own). */
export interface RunServeOptions {
  args: string[];
  env: Env;
  /** Folder holding deno.json and main.ts, for the printed stdio config. */
  projectDir: string;
  /** Resolves when the process should stop (SIGINT/SIGTERM). */
  stopSignal: Promise<string>;
  /** Folder holding `.env` and against which DATA_DIR is resolved; default the current one. */
  cwd?: string;
}

/**
 * `deno task serve` from flags to exit code: parses flags and configuration (`.env` or ENV_FILE
 * beneath the process environment; a bad value prints the message naming the variable, no
 * stack, exit 2), starts the server (a failure: exit 1), prints the MCP URL and a ready Claude
 * Desktop configuration to stderr, leaves the embedded broker's address in
 * `DATA_DIR/broker.json`, and stops everything gracefully on a signal or, with `--stdio`, when
 * the client closes stdin (exit 0).
 */
export async function runServe(opts: RunServeOptions): Promise<number> {
  let flags;
  try {
    flags = parseFlags(opts.args);
  } catch (error) {
    stderr(`${(error as Error).message}\n\n${SERVE_HELP}`);
    return EXIT.config;
  }
  if (flags.help) {
    stderr(SERVE_HELP);
    return EXIT.ok;
  }
  const settings = loadSettings(opts.env, opts.cwd, (env) => loadServeConfig(env));
  if (!settings.ok) {
    stderr(settings.message);
    return EXIT.config;
  }
  const loaded = settings.loaded;
  const config = {
    ...settings.config,
    dataDir: resolve(opts.cwd ?? Deno.cwd(), settings.config.dataDir),
  };
  const mode = flags.stdio ? "stdio" : flags.https ? "https" : "http";
  let server: RunningServer;
  try {
    server = await startServer(config, { mode });
  } catch (error) {
    if (error instanceof StartupError || error instanceof ConfigError) {
      stderr(`Cannot start: ${error.message}`);
      return EXIT.failure;
    }
    // Unexpected: still no stack for the user, but the message and the kind of failure.
    stderr(`Cannot start: ${(error as Error)?.message ?? String(error)}`);
    log.debug("start-up failure", { error });
    return EXIT.failure;
  }
  // `deno task simulate` in the same folder finds the embedded broker here (any MQTT_LISTEN).
  let removeBrokerFile = async () => {};
  if (server.brokerUrl) {
    try {
      removeBrokerFile = await writeBrokerFile(config.dataDir, server.brokerUrl);
    } catch (error) {
      log.warn("cannot leave the broker's address in DATA_DIR", { error });
    }
  }
  printBanner(server, {
    projectDir: opts.projectDir,
    dataDir: config.dataDir,
    token: config.authToken !== undefined,
    stdio: mode === "stdio",
    loaded: loaded!,
    broker: server.brokerUrl ?? redact(config.collector.mqtt.url ?? ""),
  });
  const why = await Promise.race([
    opts.stopSignal,
    server.clientGone.then(() => "client closed stdin"),
  ]);
  log.info("shutting down", { reason: why });
  await removeBrokerFile().catch(() => {});
  await server.close();
  log.info("stopped");
  return EXIT.ok;
}

function printBanner(
  server: RunningServer,
  opts: {
    projectDir: string;
    dataDir: string;
    token: boolean;
    stdio: boolean;
    loaded: LoadedEnv;
    broker: string;
  },
): void {
  if (server.embedded) {
    log.info("embedded mode: PGlite, collector and monitor in this process", {
      dataDir: opts.dataDir,
      broker: opts.broker,
    });
  }
  if (opts.stdio) {
    log.info("serving MCP over stdio", { files: server.serverUrl });
    return;
  }
  const conf = claudeDesktopConfig({
    mcpUrl: server.mcpUrl!,
    token: opts.token,
    projectDir: opts.projectDir,
    dataDir: opts.dataDir,
    denoPath: Deno.execPath(),
    compiled: !/^deno(\.exe)?$/i.test(basename(Deno.execPath())),
    permissions: permissionFlags("serve", { dataDir: opts.dataDir }),
    env: opts.loaded.env,
    envFile: opts.loaded.file,
    fromFile: opts.loaded.fromFile,
  });
  stderr([
    "",
    `MCP server ready: ${server.mcpUrl}`,
    ...(server.brokerUrl ? [`Devices publish to: ${server.brokerUrl}`] : []),
    "",
    "Claude Desktop — add to claude_desktop_config.json (needs Node.js for npx):",
    JSON.stringify(conf.remote, null, 2),
    "",
    "Or let Claude Desktop start the server itself over stdio (stop this one first" +
    (/"<(your |password)/.test(JSON.stringify(conf.stdio))
      ? "; fill in the <…> placeholders"
      : "") +
    "):",
    JSON.stringify(conf.stdio, null, 2),
    "",
  ].join("\n"));
}
