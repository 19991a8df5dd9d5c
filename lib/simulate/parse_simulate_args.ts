import { parseArgs } from "node:util";
import type { SimulateFleetOptions } from "./simulate_fleet.ts";

/** `deno task simulate --help`. */
export const SIMULATE_USAGE = `Usage: deno task simulate [options]

Runs simulated ESP32 boards (SCD30 + BMP280) that publish to MQTT_URL (or MQTT_BROKER/MQTT_PORT;
default: the embedded broker of a running \`deno task serve\`, whose address it leaves in
DATA_DIR/broker.json, else MQTT_LISTEN, 127.0.0.1:1883). Settings come from the environment
and .env (or ENV_FILE).

Options:
  --devices N          boards, each with its own MQTT connection (default 3)
  --interval S         seconds between one board's readings (default 10)
  --rate R             data messages per second for the whole fleet, as a load generator;
                       overrides --interval (e.g. --devices 1000 --rate 5000)
  --duration S         stop after S seconds (default: run until Ctrl-C)
  --speed X            simulated time runs X times faster, so a day of curves shows in minutes
                       (e.g. --speed 720 --interval 2: a day in 2 minutes); timestamps stay real
  --quiet-device on|off
                       the last board loses Wi-Fi now and then: it publishes nothing (no will)
                       so the monitor reports it silent (default on); --no-quiet-device = off
  --quiet-after S      seconds of normal operation before each quiet spell (default 120)
  --quiet-for S        length of a quiet spell in seconds (default 420)
  --error-rate P       chance per reading that a sensor reports a fault (default 0.002)
  --seed S             seed of the curves and faults, to replay a run (default random, logged)
  --prefix P           device ids are P-01, P-02, … (default esp32)
  --report S           seconds between progress lines on stderr, 0 = none (default 10)
  -h, --help           this text

Ctrl-C (or SIGTERM) stops cleanly: every board publishes "offline" and disconnects.`;

/** Options from the command line, for `simulateFleet()` (the broker comes from the environment). */
export type SimulateArgs =
  | { help: true }
  | { help: false; fleet: Omit<SimulateFleetOptions, "url" | "username" | "password" | "log"> };

/** A command line that cannot be used; the message says which flag and why. */
export class UsageError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "UsageError";
  }
}

/** Parses `deno task simulate` flags, throwing `UsageError` naming a bad flag. */
export function parseSimulateArgs(args: string[]): SimulateArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        devices: { type: "string" },
        interval: { type: "string" },
        rate: { type: "string" },
        duration: { type: "string" },
        speed: { type: "string" },
        "quiet-device": { type: "string" },
        "no-quiet-device": { type: "boolean" },
        "quiet-after": { type: "string" },
        "quiet-for": { type: "string" },
        "error-rate": { type: "string" },
        seed: { type: "string" },
        prefix: { type: "string" },
        report: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError(`${(err as Error).message} (see --help)`, { cause: err });
  }
  if (values.help) return { help: true };

  const number = (
    flag: keyof typeof values,
    limits: { min: number; max: number; integer?: boolean; above?: boolean },
  ): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const v = Number(raw);
    const ok = typeof raw === "string" && raw.trim() !== "" && Number.isFinite(v) &&
      (limits.above ? v > limits.min : v >= limits.min) && v <= limits.max &&
      (!limits.integer || Number.isInteger(v));
    if (!ok) {
      const kind = limits.integer ? "a whole number" : "a number";
      const low = limits.above ? `> ${limits.min}` : `≥ ${limits.min}`;
      throw new UsageError(`--${flag} must be ${kind} ${low} and ≤ ${limits.max}, got "${raw}"`);
    }
    return v;
  };

  let quietDevice: boolean | undefined;
  const q = values["quiet-device"];
  if (q !== undefined) {
    if (/^(on|true|yes|1)$/i.test(q)) quietDevice = true;
    else if (/^(off|false|no|0)$/i.test(q)) quietDevice = false;
    else throw new UsageError(`--quiet-device must be on or off, got "${q}"`);
  }
  if (values["no-quiet-device"]) {
    if (quietDevice === true) {
      throw new UsageError("--quiet-device on and --no-quiet-device contradict each other");
    }
    quietDevice = false;
  }

  const prefix = values.prefix;
  if (prefix !== undefined && !/^[A-Za-z0-9_-]{1,48}$/.test(prefix)) {
    throw new UsageError(
      `--prefix must be 1–48 letters, digits, "_" or "-" (it starts every device id), got "${prefix}"`,
    );
  }
  const seed = values.seed;
  if (seed !== undefined && seed.trim() === "") throw new UsageError("--seed must not be empty");

  const devices = number("devices", { min: 1, max: 100_000, integer: true }) ?? 3;
  const intervalS = number("interval", { min: 0, max: 86_400, above: true });
  const rate = number("rate", { min: 0, max: 1_000_000, above: true });
  if (intervalS !== undefined && intervalS < 0.001) {
    throw new UsageError(`--interval must be at least 0.001 s, got "${values.interval}"`);
  }
  if (rate !== undefined && (2 * devices) / rate < 0.001) {
    throw new UsageError(
      `--rate ${rate} with ${devices} device(s) means a reading every ` +
        `${((2 * devices) / rate * 1000).toPrecision(2)} ms per device, finer than the ` +
        `timestamps' millisecond resolution; use --devices ${Math.ceil(rate / 2000)} or more`,
    );
  }
  return {
    help: false,
    fleet: {
      devices,
      intervalS,
      rate,
      durationS: number("duration", { min: 0, max: 365 * 86_400, above: true }),
      speed: number("speed", { min: 0, max: 1_000_000, above: true }),
      quietDevice,
      quietAfterS: number("quiet-after", { min: 0, max: 365 * 86_400, above: true }),
      quietForS: number("quiet-for", { min: 0, max: 365 * 86_400, above: true }),
      errorRate: number("error-rate", { min: 0, max: 1 }),
      seed,
      prefix,
      reportEveryS: number("report", { min: 0, max: 86_400 }),
    },
  };
}
