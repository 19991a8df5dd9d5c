/**
 * `deno task monitor`: watches devices for silence and sends notifications (Pushover, or the log
 * when it is not configured). Needs DATABASE_URL; the embedded database belongs to
 * `deno task serve`, which runs the monitor in-process. See docs/architecture.md.
 *
 * @module
 */
import { runMonitor } from "./lib/monitor/run_monitor.ts";
import { stopSignal } from "./lib/process/mod.ts";

if (import.meta.main) {
  Deno.exit(
    await runMonitor({ args: Deno.args, env: Deno.env.toObject(), stopSignal: stopSignal() }),
  );
}
