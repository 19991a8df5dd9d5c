/**
 * `deno task simulate`: simulated ESP32 boards publishing to MQTT (see `--help`).
 *
 * @module
 */
import { ConfigError, redact } from "./lib/config/mod.ts";
import { logger } from "./lib/log/mod.ts";
import {
  FleetStartError,
  loadSimulateConfig,
  parseSimulateArgs,
  SIMULATE_USAGE,
  simulateFleet,
  UsageError,
} from "./lib/simulate/mod.ts";

const log = logger("simulate");
const SIGNALS = ["SIGINT", "SIGTERM"] as const;

/**
 * Parses flags and environment, runs the fleet, and stops it cleanly on SIGINT/SIGTERM. Bad flags
 * exit with status 2, a bad variable or an unreachable broker with 1.
 */
export async function main(args: string[] = Deno.args): Promise<void> {
  let fleet;
  try {
    const parsed = parseSimulateArgs(args);
    if (parsed.help) {
      console.log(SIMULATE_USAGE);
      return;
    }
    const config = loadSimulateConfig(Deno.env.toObject());
    if (config.mqttUrlDefaulted) {
      log.info(
        "MQTT_URL is not set: publishing to the embedded broker of `deno task serve`",
        { broker: redact(config.mqttUrl) },
      );
    }
    // Before the fleet is up, a signal just leaves: the broker publishes each board's will.
    const early = () => Deno.exit(130);
    for (const s of SIGNALS) Deno.addSignalListener(s, early);
    try {
      fleet = await simulateFleet({
        ...parsed.fleet,
        url: config.mqttUrl,
        username: config.username,
        password: config.password,
        log,
      });
    } finally {
      for (const s of SIGNALS) Deno.removeSignalListener(s, early);
    }
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError || err instanceof FleetStartError) {
      log.error(err.message);
      Deno.exitCode = err instanceof UsageError ? 2 : 1;
      return;
    }
    throw err;
  }
  const running = fleet;
  let signalled = false;
  const onSignal = () => {
    if (signalled) {
      // A second Ctrl-C while a device still waits for the broker: leave; the wills say offline.
      log.warn("stopping now, without waiting for the broker");
      Deno.exit(130);
    }
    signalled = true;
    log.info("stopping: every device says offline and disconnects");
    void running.stop();
  };
  for (const s of SIGNALS) Deno.addSignalListener(s, onSignal);
  try {
    await running.finished;
  } finally {
    for (const s of SIGNALS) Deno.removeSignalListener(s, onSignal);
  }
}

if (import.meta.main) await main();
