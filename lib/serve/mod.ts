/**
 * `deno task serve`: flags, start-up of the whole server (embedded stack included), the printed
 * Claude Desktop configuration, and graceful shutdown.
 *
 * @module
 */
export { runServe, type RunServeOptions } from "./run_serve.ts";
export { stopSignal } from "../process/mod.ts";
export {
  type RunningServer,
  type ServeMode,
  startServer,
  type StartServerOptions,
  StartupError,
} from "./start_server.ts";
export { parseFlags, SERVE_HELP, type ServeFlags } from "./parse_flags.ts";
export { claudeDesktopConfig, type ClaudeDesktopConfigOptions } from "./claude_desktop_config.ts";
