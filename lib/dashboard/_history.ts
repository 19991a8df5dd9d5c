import type { Db } from "../db/mod.ts";
import { loadCatalog, type SensorHistory, sensorHistory, sensorMetrics } from "../readings/mod.ts";

/** The ranges the history view offers, in milliseconds. */
export const RANGES: Record<string, number> = {
  "24h": 86_400_000,
  "7d": 7 * 86_400_000,
  "30d": 30 * 86_400_000,
  "1y": 365 * 86_400_000,
};

/** Buckets per history chart at most: 5 min for 24 h, 30 min for 7 d, 2 h for 30 d, 1 d for 1 y. */
export const HISTORY_MAX_POINTS = 400;

/** A history as JSON, in the shape of `get_sensor_history`'s structured result (no CSV). */
export function historyJson(h: SensorHistory) {
  const s = h.sensor;
  return {
    sensor: {
      sensor_id: s.sensorId,
      device_id: s.deviceId,
      device_name: s.deviceName,
      sensor_type: s.sensorType,
      location: s.location,
    },
    metric: h.metric,
    unit: h.unit,
    bucket: h.bucket.label,
    bucket_seconds: h.bucket.seconds,
    start: h.start.toISOString(),
    end: h.end.toISOString(),
    points: h.points.map((p) => ({
      time: p.time.toISOString(),
      avg: p.avg,
      min: p.min,
      max: p.max,
      count: p.count,
    })),
  };
}

/**
 * The downsampled history of one sensor's metric over one of `RANGES` ending at `now`, from
 * `sensorHistory` (the same aggregation as `get_sensor_history`).
 *
 * @throws {ReadingsError} for an unknown sensor or metric.
 * @throws {RangeError} for an unknown range.
 */
export async function loadHistory(
  db: Db,
  opts: {
    sensorId: number;
    metric: string;
    range: string;
    now: Date;
    maxPoints?: number;
    timeoutMs?: number;
  },
): Promise<SensorHistory> {
  const span = Object.hasOwn(RANGES, opts.range) ? RANGES[opts.range] : undefined;
  if (span === undefined) {
    throw new RangeError(
      `Unknown range "${String(opts.range).slice(0, 20)}": use one of ${
        Object.keys(RANGES).join(", ")
      }`,
    );
  }
  return await sensorHistory(db, {
    sensorId: opts.sensorId,
    metric: opts.metric,
    start: new Date(opts.now.getTime() - span),
    end: opts.now,
    maxPoints: opts.maxPoints ?? HISTORY_MAX_POINTS,
    timeoutMs: opts.timeoutMs,
  });
}

/**
 * The series the history view opens with: the CO2 of the first sensor (by device id) whose device
 * has not said it is offline, else the first metric of the first sensor that has one; undefined
 * when no sensor has a metric yet. The page asks for it together with the overview.
 */
export async function defaultSeries(
  db: Db,
): Promise<{ sensorId: number; metric: string } | undefined> {
  const catalog = await loadCatalog(db);
  const withMetrics = catalog.sensors
    .map((s) => ({ s, metrics: sensorMetrics(catalog, s) }))
    .filter((x) => x.metrics.length > 0);
  const co2 = withMetrics.find((x) => x.s.deviceStatus !== "offline" && x.metrics.includes("co2"));
  const first = co2 ?? withMetrics[0];
  if (!first) return undefined;
  return { sensorId: first.s.sensorId, metric: co2 ? "co2" : first.metrics[0] };
}
