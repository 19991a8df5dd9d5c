/**
 * `deno task serve`: the MCP server (HTTP, `--https`, `--stdio`); without DATABASE_URL the whole
 * stack in one process. See `deno task serve --help` and docs/architecture.md.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { stopSignal } from "./lib/process/mod.ts";
import { runServe } from "./lib/serve/mod.ts";

if (import.meta.main) {
  const projectDir = dirname(fileURLToPath(import.meta.url));
  const env = Deno.env.toObject();
  // Client libraries may keep timers or stdin open after a clean shutdown; the work is done.
  Deno.exit(await runServe({ args: Deno.args, env, projectDir, stopSignal: stopSignal() }));
}
