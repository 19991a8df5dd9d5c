import { redact } from "../config/mod.ts";
import { type Logger, logger } from "../log/mod.ts";
import { ROOM_KINDS } from "./_curves.ts";
import { createRandom } from "./_random.ts";
import { connectAll, FleetStartError } from "./_connect_all.ts";
import { inQuietSpell } from "./_quiet_spell.ts";
import { type Counters, SimDevice } from "./_sim_device.ts";

export { FleetStartError };

/** How a fleet runs; every field but `url` has a default. */
export interface SimulateFleetOptions {
  /** Broker, e.g. `mqtt://127.0.0.1:1883`. */
  url: string;
  username?: string;
  password?: string;
  /** Number of boards, each with its own connection. Default 3. */
  devices?: number;
  /** Seconds between one board's readings. Default 10. */
  intervalS?: number;
  /**
   * Data messages per second for the whole fleet (two per reading: SCD30 and BMP280). Overrides
   * `intervalS`: each board then reads every `2 × devices / rate` seconds, boards staggered evenly.
   */
  rate?: number;
  /** Stop after this many seconds; default: run until `stop()`. */
  durationS?: number;
  /** Simulated time runs this many times faster than real time (curves only). Default 1. */
  speed?: number;
  /** One board (the last) loses Wi-Fi now and then: it stops publishing, without a will. Default true. */
  quietDevice?: boolean;
  /** Seconds of normal operation before each quiet spell. Default 120. */
  quietAfterS?: number;
  /** Length of a quiet spell, seconds; longer than the monitor's 300 s threshold. Default 420. */
  quietForS?: number;
  /** Chance that a board's reading round reports a sensor fault. Default 0.002. */
  errorRate?: number;
  /** Seed of the curves and faults; default a random one (logged, to replay a run). */
  seed?: string;
  /** Device ids are `<prefix>-01`, `<prefix>-02`, … Default `esp32`. */
  prefix?: string;
  /** Seconds between progress lines on stderr; 0 turns them off. Default 10. */
  reportEveryS?: number;
  /** How long the first connection may take before the fleet gives up, seconds. Default 15. */
  connectTimeoutS?: number;
  /** When publishing falls this many seconds behind schedule, overdue readings are skipped. Default 5. */
  maxLagS?: number;
  log?: Logger;
}

/** A snapshot of a fleet's counters. */
export interface FleetStats extends Counters {
  devices: number;
  connected: number;
  /** The board that goes quiet, if any, and whether it is quiet now. */
  quietDevice: string | undefined;
  quietNow: boolean;
  /** Simulated time of the curves, ISO 8601. */
  simTime: string;
}

/** A running fleet. */
export interface Fleet extends AsyncDisposable {
  /** Ids of the boards, in order. */
  readonly deviceIds: readonly string[];
  /** The seed in use (give it to `seed` to replay the same curves). */
  readonly seed: string;
  /** Seconds between one board's readings. */
  readonly intervalS: number;
  /** Current counters. */
  stats(): FleetStats;
  /** Says `offline` for every board, disconnects them, and resolves with the final counters. */
  stop(): Promise<FleetStats>;
  /** Resolves when the fleet has stopped (duration over or `stop()`). */
  readonly finished: Promise<FleetStats>;
}

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MIN_TICK_MS = 10;
/** Messages awaiting a PUBACK beyond which publishing pauses (a slow broker). */
const MAX_OUTSTANDING = 20_000;

/**
 * Starts a fleet of simulated ESP32 boards (SCD30 + BMP280) publishing to an MQTT broker as
 * DESIGN.md's MQTT contract says: each board connects as `sim-<device>` with a retained `offline`
 * last will, announces its capabilities and `online` (retained), then publishes a reading per
 * interval at QoS 1. Resolves once every board is connected; rejects with `FleetStartError` when
 * the broker cannot be reached within `connectTimeoutS` or refuses the credentials.
 */
export async function simulateFleet(opts: SimulateFleetOptions): Promise<Fleet> {
  const log = opts.log ?? logger("simulate");
  const count = opts.devices ?? 3;
  const prefix = opts.prefix ?? "esp32";
  const speed = opts.speed ?? 1;
  const intervalMs = opts.rate !== undefined
    ? (2 * count * 1000) / opts.rate
    : (opts.intervalS ?? 10) * 1000;
  if (!Number.isInteger(count) || count < 1) {
    throw new RangeError(`devices must be a whole number ≥ 1, got ${count}`);
  }
  if (!(intervalMs >= 1) || !Number.isFinite(intervalMs)) {
    throw new RangeError(
      `each device would read every ${intervalMs} ms; timestamps have millisecond resolution, ` +
        "so lower the rate or add devices",
    );
  }
  if (!(speed > 0)) throw new RangeError(`speed must be > 0, got ${speed}`);
  const seed = opts.seed ?? crypto.randomUUID().slice(0, 8);
  const width = Math.max(2, String(count).length);
  const ids = Array.from(
    { length: count },
    (_, i) => `${prefix}-${String(i + 1).padStart(width, "0")}`,
  );
  if (!ids.every((id) => DEVICE_ID.test(id))) {
    throw new RangeError(
      `device ids such as "${ids[ids.length - 1]}" must match [A-Za-z0-9_-]{1,64}; ` +
        `choose another prefix than "${prefix}"`,
    );
  }

  const counters: Counters = {
    readings: 0,
    published: 0,
    acked: 0,
    failed: 0,
    errors: 0,
    skipped: 0,
    disconnects: 0,
  };
  const startSimMs = Date.now();
  const random = createRandom(`${seed}/faults`);
  const verbose = count <= 10;
  const devices = ids.map((id, i) =>
    new SimDevice({
      id,
      room: ROOM_KINDS[i % ROOM_KINDS.length],
      url: opts.url,
      username: opts.username,
      password: opts.password,
      seed,
      startSimMs,
      intervalS: intervalMs / 1000,
      millisecondTimestamps: intervalMs < 1000,
      errorRate: opts.errorRate ?? 0.002,
      random,
      counters,
      onConnectionChange: (device, up, reason) => {
        if (!verbose) return; // a fleet's connection count shows in the progress line
        if (up) log.info("device reconnected", { device });
        else log.warn("device lost the broker, reconnecting", { device, reason });
      },
    })
  );
  const safeUrl = redact(opts.url);
  log.info("starting fleet", {
    devices: count,
    broker: safeUrl,
    interval_s: round3(intervalMs / 1000),
    ...(opts.rate !== undefined ? { rate: `${opts.rate}/s` } : {}),
    speed,
    seed,
  });
  // The last board is the one that goes quiet, unless that is turned off.
  const quiet = (opts.quietDevice ?? true) ? devices[count - 1] : undefined;
  const connectStart = Date.now();
  await connectAll(devices, {
    timeoutMs: (opts.connectTimeoutS ?? 15) * 1000,
    url: safeUrl,
    log,
  });
  log.info("devices connected and announced, publishing readings", {
    connected: `${devices.filter((d) => d.connected).length}/${count}`,
    seconds: round3((Date.now() - connectStart) / 1000),
    ...(quiet ? { quiet_device: quiet.id } : {}),
  });

  // Schedule: round n belongs to device n mod count and is due at start + n·step, which staggers
  // the boards evenly over an interval and gives the fleet an exact aggregate rate.
  const startMs = Date.now();
  const stepMs = intervalMs / count;
  const maxLagMs = (opts.maxLagS ?? 5) * 1000;
  const simAt = (realMs: number) => startSimMs + (realMs - startMs) * speed;
  const quietAfterMs = (opts.quietAfterS ?? 120) * 1000;
  const quietForMs = (opts.quietForS ?? 420) * 1000;
  const isQuiet = (realMs: number) =>
    inQuietSpell(realMs - startMs, { afterMs: quietAfterMs, forMs: quietForMs });
  let quietNow = false;
  let n = 0;
  let tickTimer: ReturnType<typeof setTimeout> | undefined;
  let stopping: Promise<FleetStats> | undefined;
  const outstanding = () => counters.published - counters.acked - counters.failed;

  const tick = () => {
    tickTimer = undefined;
    const now = Date.now();
    let paused = false;
    for (let due = startMs + n * stepMs; due <= now; due = startMs + n * stepMs) {
      if (now - due > maxLagMs) {
        const overdue = Math.floor((now - maxLagMs - due) / stepMs) + 1;
        counters.skipped += overdue;
        n += overdue;
        continue;
      }
      if (outstanding() >= MAX_OUTSTANDING) {
        paused = true;
        break;
      }
      const device = devices[n % count];
      n++;
      if (device === quiet) {
        const q = isQuiet(now);
        if (q !== quietNow) {
          quietNow = q;
          if (q) {
            log.info("device lost Wi-Fi: it stays connected but publishes nothing", {
              device: device.id,
              for_s: quietForMs / 1000,
            });
          } else {
            log.info("device is back", { device: device.id });
            if (device.connected) device.announce();
          }
        }
        if (q) continue;
      }
      device.publishReading(due, simAt(due));
    }
    const wait = paused ? MIN_TICK_MS : Math.max(MIN_TICK_MS, startMs + n * stepMs - Date.now());
    tickTimer = setTimeout(tick, wait);
  };

  const stats = (): FleetStats => ({
    ...counters,
    devices: count,
    connected: devices.filter((d) => d.connected).length,
    quietDevice: quiet?.id,
    quietNow,
    simTime: new Date(simAt(Date.now())).toISOString(),
  });

  let lastReport = { at: startMs, acked: 0 };
  const report = () => {
    const s = stats();
    const now = Date.now();
    const rate = (s.acked - lastReport.acked) / Math.max(0.001, (now - lastReport.at) / 1000);
    lastReport = { at: now, acked: s.acked };
    log.info("fleet", {
      connected: `${s.connected}/${s.devices}`,
      readings: s.readings,
      published: s.published,
      acked: s.acked,
      rate: `${Math.round(rate)}/s`,
      errors: s.errors,
      skipped: s.skipped,
      failed: s.failed,
      quiet: quiet && quietNow ? quiet.id : "none",
      ...(speed !== 1 ? { sim_time: localMinute(simAt(now)) } : {}),
    });
  };
  const reportEveryMs = (opts.reportEveryS ?? 10) * 1000;
  const reportTimer = reportEveryMs > 0 ? setInterval(report, reportEveryMs) : undefined;

  let resolveFinished!: (s: FleetStats) => void;
  const finished = new Promise<FleetStats>((resolve) => resolveFinished = resolve);
  const durationTimer = opts.durationS !== undefined
    ? setTimeout(() => void stop(), opts.durationS * 1000)
    : undefined;

  const stop = (): Promise<FleetStats> => {
    stopping ??= (async () => {
      clearTimeout(tickTimer);
      clearTimeout(durationTimer);
      clearInterval(reportTimer);
      const said = (await Promise.all(devices.map((d) => d.stop(3000)))).filter(Boolean).length;
      const s = stats();
      log.info("fleet stopped", {
        said_offline: `${said}/${count}`,
        readings: s.readings,
        published: s.published,
        acked: s.acked,
        errors: s.errors,
        skipped: s.skipped,
        failed: s.failed,
        seconds: round3((Date.now() - startMs) / 1000),
      });
      resolveFinished(s);
      return s;
    })();
    return stopping;
  };

  tick();
  return {
    deviceIds: ids,
    seed,
    intervalS: intervalMs / 1000,
    stats,
    stop,
    finished,
    [Symbol.asyncDispose]: async () => {
      await stop();
    },
  };
}

/** `YYYY-MM-DD HH:MM` in local time, the clock the curves follow. */
function localMinute(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${
    p(d.getMinutes())
  }`;
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
