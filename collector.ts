/**
 * `deno task collect`: stores every reading devices publish over MQTT in PostgreSQL, through a
 * crash-safe journal in `DATA_DIR/journal`. Stops cleanly (everything journaled is written) on
 * SIGINT or SIGTERM. See docs/architecture.md.
 *
 * @module
 */
import { runCollector } from "./lib/ingest/run_collector.ts";
import { stopSignal } from "./lib/process/mod.ts";

if (import.meta.main) {
  Deno.exit(
    await runCollector({ args: Deno.args, env: Deno.env.toObject(), stopSignal: stopSignal() }),
  );
}
