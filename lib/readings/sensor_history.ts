import { type Db, ident, type Queryable } from "../db/mod.ts";
import {
  deviceLabel,
  listChoices,
  loadCatalog,
  loadFlexibleMetrics,
  type SensorInfo,
  sensorsOfDevice,
} from "./_catalog.ts";
import { type Bucket, BUCKET_ORIGIN, chooseBucket } from "./choose_bucket.ts";
import { ReadingsError } from "./readings_error.ts";

/** One time bucket of a history. */
export interface HistoryPoint {
  /** Start of the bucket. */
  time: Date;
  avg: number;
  min: number;
  max: number;
  /** Readings in the bucket. */
  count: number;
}

/** Options of `sensorHistory`; give `sensorId` or `device` (with `sensorType` when needed). */
export interface SensorHistoryOptions {
  sensorId?: number;
  /** Device id or name, case-insensitive. */
  device?: string;
  /** Picks one sensor of the device when several have the metric (e.g. `scd30`). */
  sensorType?: string;
  metric: string;
  start: Date;
  end: Date;
  /** Upper bound on the number of buckets returned. */
  maxPoints: number;
  /**
   * Cancel the aggregation after this long, rejecting with `QueryTimeout` (see
   * `Db.transaction`); default: no limit.
   */
  timeoutMs?: number;
}

/** A downsampled history of one metric of one sensor. */
export interface SensorHistory {
  sensor: SensorInfo;
  metric: string;
  unit: string | null;
  /** Which table layout the points came from. */
  layout: "columnar" | "flexible";
  bucket: Bucket;
  start: Date;
  end: Date;
  points: HistoryPoint[];
}

/**
 * Average, minimum, maximum and count of one metric per time bucket from `start` up to, not
 * including, `end`, computed in the database with `date_bin`. The bucket width is the smallest round
 * width that keeps the number of buckets within `maxPoints`. Reads the columnar table when it
 * holds readings of the metric in the range, else the flexible `measurements` table, so it works
 * whichever layouts STORAGE_LAYOUTS enables.
 *
 * @throws {ReadingsError} for an unknown or ambiguous sensor, device or metric, listing the
 * valid choices, or when `start` is not before `end`.
 * @throws {QueryTimeout} when the aggregation runs past `timeoutMs`.
 */
export async function sensorHistory(db: Db, opts: SensorHistoryOptions): Promise<SensorHistory> {
  if (!(opts.start.getTime() < opts.end.getTime())) {
    throw new ReadingsError(
      `The start (${opts.start.toISOString()}) must be before the end (${opts.end.toISOString()})`,
    );
  }
  const metric = opts.metric.trim().toLowerCase();
  const { sensors, columnar, units } = await loadCatalog(db);
  const candidates = pickCandidates(sensors, opts);
  const staticMetrics = (s: SensorInfo) => {
    const names = new Set<string>(columnar.get(s.sensorType) ?? []);
    for (const key of units.keys()) {
      const [type, name] = key.split("/");
      if (type === s.sensorType) names.add(name);
    }
    return names;
  };
  // The flexible table can only add metrics: look there only when the tables and the metrics
  // list do not already name the metric for every candidate (one index probe per metric).
  const flexible = candidates.every((s) => staticMetrics(s).has(metric))
    ? new Map<number, string[]>()
    : await loadFlexibleMetrics(db, candidates.map((s) => s.sensorId));
  const metricsOf = (s: SensorInfo) =>
    [...new Set([...staticMetrics(s), ...(flexible.get(s.sensorId) ?? [])])].sort();
  const withMetric = candidates.filter((s) => metricsOf(s).includes(metric));
  if (withMetric.length === 0) {
    const choices = [...new Set(candidates.flatMap(metricsOf))].sort();
    const whose = candidates.length === 1
      ? `sensor ${candidates[0].sensorId} (${candidates[0].sensorType} on ${
        deviceLabel(candidates[0])
      })`
      : `device ${deviceLabel(candidates[0])}`;
    throw new ReadingsError(
      `Unknown metric "${opts.metric}" for ${whose}. Its metrics: ${listChoices(choices)}`,
      choices,
    );
  }
  if (withMetric.length > 1) {
    const types = withMetric.map((s) => s.sensorType);
    throw new ReadingsError(
      `Device ${deviceLabel(withMetric[0])} has several sensors measuring "${metric}": ` +
        `${withMetric.map((s) => `${s.sensorType} (sensor_id ${s.sensorId})`).join(", ")}. ` +
        `Pass sensor_type (one of ${types.join(", ")}) or sensor_id.`,
      types,
    );
  }
  const sensor = withMetric[0];
  const bucket = chooseBucket(opts);
  const unit = units.get(`${sensor.sensorType}/${metric}`) ?? null;
  const base = { sensor, metric, unit, bucket, start: opts.start, end: opts.end };
  const range = {
    stride: `${bucket.seconds} seconds`,
    origin: BUCKET_ORIGIN,
    sensorId: sensor.sensorId,
    start: opts.start,
    end: opts.end,
  };

  const hasColumn = columnar.get(sensor.sensorType)?.includes(metric) ?? false;
  const aggregate = async (q: Queryable): Promise<SensorHistory> => {
    // Both aggregates group a subquery kept apart by `offset 0`: the planner then assumes a few
    // hundred buckets and hashes them, instead of sorting every reading because it takes each
    // distinct timestamp for a bucket of its own.
    if (hasColumn) {
      const col = ident(metric);
      const rows = await q.sql<PointRow>`
        select b as time, avg(v) as avg, min(v) as min, max(v) as max, count(*) as count
        from (
          select date_bin(${range.stride}::interval, time, ${range.origin}::timestamptz) as b,
                 ${col} as v
          from ${ident(`${sensor.sensorType}_measurements`)}
          where sensor_id = ${range.sensorId} and time >= ${range.start} and time < ${range.end}
            and ${col} is not null
          offset 0
        ) s
        group by b
        order by b`;
      if (rows.length > 0) return { ...base, layout: "columnar", points: rows.map(toPoint) };
    }
    // The flexible layout: the only one for this metric, or the one holding this period.
    const rows = await q.sql<PointRow>`
      select b as time, avg(v) as avg, min(v) as min, max(v) as max, count(*) as count
      from (
        select date_bin(${range.stride}::interval, time, ${range.origin}::timestamptz) as b,
               value as v
        from measurements
        where sensor_id = ${range.sensorId} and metric_type = ${metric}
          and time >= ${range.start} and time < ${range.end}
        offset 0
      ) s
      group by b
      order by b`;
    return {
      ...base,
      layout: rows.length > 0 || !hasColumn ? "flexible" : "columnar",
      points: rows.map(toPoint),
    };
  };
  return opts.timeoutMs
    ? await db.transaction(aggregate, { timeoutMs: opts.timeoutMs })
    : await aggregate(db);
}

interface PointRow {
  time: Date;
  avg: number;
  min: number;
  max: number;
  count: number;
}

function toPoint(r: PointRow): HistoryPoint {
  return {
    time: r.time,
    avg: Number(r.avg),
    min: Number(r.min),
    max: Number(r.max),
    count: Number(r.count),
  };
}

function pickCandidates(sensors: SensorInfo[], opts: SensorHistoryOptions): SensorInfo[] {
  if (opts.sensorId !== undefined) {
    const s = sensors.find((x) => x.sensorId === opts.sensorId);
    if (!s) {
      const byId = [...sensors].sort((a, b) => a.sensorId - b.sensorId);
      const choices = byId.map((x) =>
        `${x.sensorId} (${x.sensorType} on ${deviceLabel(x)}${x.location ? `, ${x.location}` : ""})`
      );
      throw new ReadingsError(
        `Unknown sensor_id ${opts.sensorId}. Known sensors: ${listChoices(choices)}`,
        byId.map((x) => String(x.sensorId)),
      );
    }
    return [s];
  }
  if (opts.device === undefined || opts.device.trim() === "") {
    const choices = [...sensors].sort((a, b) => a.sensorId - b.sensorId)
      .map((x) => `${x.sensorId} (${x.sensorType} on ${deviceLabel(x)})`);
    throw new ReadingsError(
      `Give sensor_id, or device (id or name) to pick the sensor. Known sensors: ${
        listChoices(choices)
      }`,
      sensors.map((x) => String(x.sensorId)),
    );
  }
  const ofDevice = sensorsOfDevice(sensors, opts.device);
  if (opts.sensorType === undefined || opts.sensorType.trim() === "") return ofDevice;
  const type = opts.sensorType.trim().toLowerCase();
  const ofType = ofDevice.filter((s) => s.sensorType.toLowerCase() === type);
  if (ofType.length === 0) {
    const types = ofDevice.map((s) => s.sensorType);
    throw new ReadingsError(
      `Device ${deviceLabel(ofDevice[0])} has no "${opts.sensorType}" sensor. ` +
        `Its sensor types: ${listChoices(types)}`,
      types,
    );
  }
  return ofType;
}
