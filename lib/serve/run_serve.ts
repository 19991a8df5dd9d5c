import { basename, resolve } from "node:path";
import { ConfigError, type Env, loadServeConfig } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
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
}

/**
 * `deno task serve` from flags to exit code: parses flags and configuration (a bad value prints
 * the message naming the variable, no stack, exit 1), starts the server, prints the MCP URL and a
 * ready Claude Desktop configuration to stderr, and stops everything gracefully on a signal or,
 * with `--stdio`, when the client closes stdin.
 */
export async function runServe(opts: RunServeOptions): Promise<number> {
  let flags;
  try {
    flags = parseFlags(opts.args);
  } catch (error) {
    stderr(`${(error as Error).message}\n\n${SERVE_HELP}`);
    return 2;
  }
  if (flags.help) {
    stderr(SERVE_HELP);
    return 0;
  }
  let config;
  try {
    config = loadServeConfig(opts.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      stderr(error.message);
      return 1;
    }
    throw error;
  }
  const mode = flags.stdio ? "stdio" : flags.https ? "https" : "http";
  let server: RunningServer;
  try {
    server = await startServer(config, { mode });
  } catch (error) {
    if (error instanceof StartupError || error instanceof ConfigError) {
      stderr(`Cannot start: ${error.message}`);
      return 1;
    }
    // Unexpected: still no stack for the user, but the message and the kind of failure.
    stderr(`Cannot start: ${(error as Error)?.message ?? String(error)}`);
    log.debug("start-up failure", { error });
    return 1;
  }
  printBanner(server, {
    projectDir: opts.projectDir,
    dataDir: resolve(config.dataDir),
    token: config.authToken !== undefined,
    stdio: mode === "stdio",
    env: opts.env,
  });
  const why = await Promise.race([
    opts.stopSignal,
    server.clientGone.then(() => "client closed stdin"),
  ]);
  log.info("shutting down", { reason: why });
  await server.close();
  log.info("stopped");
  return 0;
}

function printBanner(
  server: RunningServer,
  opts: { projectDir: string; dataDir: string; token: boolean; stdio: boolean; env: Env },
): void {
  if (server.embedded) {
    log.info("embedded mode: PGlite, collector and monitor in this process", {
      dataDir: opts.dataDir,
      broker: server.brokerUrl ?? "MQTT_URL",
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
    env: opts.env,
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

/** Resolves with the signal name on the first SIGINT or SIGTERM; a second one exits at once. */
export function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    let first = 0;
    const on = (sig: Deno.Signal) => () => {
      // A signal sent to the whole process group can arrive twice at once; only a deliberate
      // second one (Ctrl+C again) skips the clean shutdown.
      if (first && Date.now() - first > 1000) {
        stderr("Second signal: exiting without a clean shutdown.");
        Deno.exit(130);
      }
      first ||= Date.now();
      resolve(sig);
    };
    for (const sig of ["SIGINT", "SIGTERM"] as const) {
      try {
        Deno.addSignalListener(sig, on(sig));
      } catch {
        // SIGTERM cannot be listened to on Windows; Ctrl+C (SIGINT) still works there.
      }
    }
  });
}
