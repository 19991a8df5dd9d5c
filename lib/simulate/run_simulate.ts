import { resolve } from "node:path";
import { loadSettings, redact } from "../config/mod.ts";
import { logger } from "../log/mod.ts";
import { EXIT, readBrokerFile, type RunOptions } from "../process/mod.ts";
import { FleetStartError, simulateFleet } from "./simulate_fleet.ts";
import { loadSimulateConfig } from "./load_simulate_config.ts";
import { parseSimulateArgs, SIMULATE_USAGE, UsageError } from "./parse_simulate_args.ts";

const log = logger("simulate");

/** What `runSimulate` takes from the process. */
export type RunSimulateOptions = RunOptions;

/**
 * `deno task simulate` from flags to exit status: a bad flag or setting → 2, a broker that
 * cannot be reached or refuses the credentials → 1, a clean stop (every board says offline) → 0.
 * Without MQTT_URL the boards publish to the broker a running `deno task serve` announced in
 * `DATA_DIR/broker.json`, else to MQTT_LISTEN; the log names the address either way.
 */
export async function runSimulate(opts: RunSimulateOptions): Promise<number> {
  let parsed;
  try {
    parsed = parseSimulateArgs(opts.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    log.error(err.message);
    return EXIT.config;
  }
  if (parsed.help) {
    console.log(SIMULATE_USAGE);
    return EXIT.ok;
  }
  const settings = loadSettings(opts.env, opts.cwd, (env) => {
    const dataDir = resolve(opts.cwd ?? Deno.cwd(), env.DATA_DIR?.trim() || "./data");
    return loadSimulateConfig(env, { serverBroker: readBrokerFile(dataDir) });
  });
  if (!settings.ok) {
    log.error(settings.message);
    return EXIT.config;
  }
  const { config } = settings;
  log.info(
    config.mqttUrlDefaulted
      ? `MQTT_URL is not set: publishing to the embedded broker of deno task serve (from ${config.mqttUrlFrom})`
      : `publishing to ${config.mqttUrlFrom}`,
    { broker: redact(config.mqttUrl) },
  );
  let fleet;
  try {
    const starting = simulateFleet({
      ...parsed.fleet,
      url: config.mqttUrl,
      username: config.username,
      password: config.password,
      log,
    });
    starting.catch(() => {}); // reported below, unless a stop signal came first
    // Before the fleet is up, a signal just leaves: the broker publishes each board's will.
    const first = await Promise.race([starting, opts.stopSignal.then(() => undefined)]);
    if (first === undefined) return EXIT.ok;
    fleet = first;
  } catch (err) {
    if (!(err instanceof FleetStartError)) throw err;
    log.error(
      config.mqttUrlFrom.endsWith(".json")
        ? `${err.message} (the address is from ${config.mqttUrlFrom}, which a running deno task ` +
          "serve leaves; a server that was killed leaves it behind)"
        : err.message,
    );
    return EXIT.failure;
  }
  const running = fleet;
  void opts.stopSignal.then(() => {
    log.info("stopping: every device says offline and disconnects");
    void running.stop();
  });
  await running.finished;
  return EXIT.ok;
}
