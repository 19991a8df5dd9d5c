/**
 * `deno task serve`: the MCP server (HTTP, `--https`, `--stdio`); without DATABASE_URL the whole
 * stack in one process. See `deno task serve --help`.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { runServe, stopSignal } from "./lib/serve/mod.ts";

async function main() {
  const code = await runServe({
    args: Deno.args,
    env: Deno.env.toObject(),
    projectDir: dirname(fileURLToPath(import.meta.url)),
    stopSignal: stopSignal(),
  });
  // Client libraries may keep timers or stdin open after a clean shutdown; the work is done.
  Deno.exit(code);
}

if (import.meta.main) await main();
