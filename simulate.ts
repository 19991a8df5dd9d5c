/**
 * `deno task simulate`: simulated ESP32 boards publishing to MQTT (see `--help` and
 * docs/architecture.md).
 *
 * @module
 */
import { stopSignal } from "./lib/process/mod.ts";
import { runSimulate } from "./lib/simulate/run_simulate.ts";

if (import.meta.main) {
  Deno.exit(
    await runSimulate({ args: Deno.args, env: Deno.env.toObject(), stopSignal: stopSignal() }),
  );
}
