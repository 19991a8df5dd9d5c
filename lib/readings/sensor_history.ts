import { type Db, ident, type Queryable } from "../db/mod.ts";
import { deviceLabel, listChoices, type SensorInfo, sensorsOfDevice } from "./_catalog.ts";
import { type CachedCatalog, cachedCatalog } from "./_cached_catalog.ts";
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
 * One statement does the work: it aggregates the columnar table, falls back to the flexible one
 * only when that found nothing, and reads the sensor's current device, name and location. The
 * sensor is picked from a cached catalog (see `cachedCatalog`); whatever the cached catalog
 * cannot answer, or answers differently from the database, makes it read the catalog again.
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
  const bucket = chooseBucket(opts);
  for (let fresh = false;; fresh = true) {
    const catalog = await cachedCatalog(db, { fresh });
    let target: Target;
    try {
      target = await pickTarget(catalog, opts, metric);
    } catch (error) {
      // Unknown to the cached catalog: the device or table may be new.
      if (error instanceof ReadingsError && !catalog.fresh) continue;
      throw error;
    }
    const aggregate = (q: Queryable) =>
      aggregateRows(q, { target, metric, bucket, start: opts.start, end: opts.end });
    let rows: HistoryRow[];
    try {
      rows = opts.timeoutMs
        ? await db.transaction(aggregate, { timeoutMs: opts.timeoutMs })
        : await aggregate(db);
    } catch (error) {
      // 42P01 undefined_table, 42703 undefined_column: the cached tables changed.
      const code = (error as { code?: unknown })?.code;
      if (!catalog.fresh && (code === "42P01" || code === "42703")) continue;
      throw error;
    }
    const { sensor } = target;
    const [row] = rows;
    const current = row !== undefined && row.sensor_type === sensor.sensorType &&
      row.device_id === sensor.deviceId && row.siblings === target.siblings;
    if (!current && !catalog.fresh) continue; // the sensor, or its device's sensors, changed
    if (row === undefined) {
      throw new ReadingsError(`Unknown sensor_id ${sensor.sensorId}: it was just removed`);
    }
    const columnarPoints = parsePoints(row.columnar);
    const layout = columnarPoints.length > 0 || (target.hasColumn && row.flexible === null)
      ? "columnar"
      : "flexible";
    return {
      sensor: { ...sensor, deviceName: row.device_name, location: row.location },
      metric,
      unit: target.unit,
      layout,
      bucket,
      start: opts.start,
      end: opts.end,
      points: layout === "columnar" ? columnarPoints : parsePoints(row.flexible),
    };
  }
}

/** The sensor a history reads, as the catalog describes it. */
interface Target {
  sensor: SensorInfo;
  /** The metric is a column of the sensor type's columnar table. */
  hasColumn: boolean;
  unit: string | null;
  /** Ids of the device's sensors, comma-separated: a new one may make the choice ambiguous. */
  siblings: string;
}

/** Picks the sensor and layout for `metric`, or throws the ReadingsError naming the choices. */
async function pickTarget(
  catalog: CachedCatalog,
  opts: SensorHistoryOptions,
  metric: string,
): Promise<Target> {
  const { sensors, columnar, units } = catalog;
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
    : await catalog.flexibleMetrics(candidates.map((s) => s.sensorId));
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
  return {
    sensor,
    hasColumn: columnar.get(sensor.sensorType)?.includes(metric) ?? false,
    unit: units.get(`${sensor.sensorType}/${metric}`) ?? null,
    siblings: sensors.filter((s) => s.deviceId === sensor.deviceId).map((s) => s.sensorId)
      .sort((a, b) => a - b).join(","),
  };
}

/**
 * The sensor's current row with the points of each layout as JSON arrays of
 * `[time, avg, min, max, count]` (null when none): one row crosses from the database instead of
 * one per bucket, which the embedded database hands over several times faster.
 */
interface HistoryRow {
  device_id: string;
  device_name: string | null;
  sensor_type: string;
  location: string | null;
  siblings: string | null;
  columnar: unknown;
  flexible: unknown;
}

/**
 * The one statement of a history. Each aggregate groups a subquery kept apart by `offset 0`: the
 * planner then assumes a few hundred buckets and hashes them, instead of sorting every reading
 * because it takes each distinct timestamp for a bucket of its own. The flexible table is read
 * only when the columnar one has no reading in the period (an uncorrelated `not exists`, checked
 * once before that scan starts). No row comes back when the sensor does not exist.
 */
function aggregateRows(
  q: Queryable,
  o: { target: Target; metric: string; bucket: Bucket; start: Date; end: Date },
): Promise<HistoryRow[]> {
  const id = o.target.sensor.sensorId;
  const stride = `${o.bucket.seconds} seconds`;
  const { start, end, metric } = o;
  if (!o.target.hasColumn) {
    return q.sql<HistoryRow>`
      with sensor as materialized (
        select s.device_id, d.device_name, s.sensor_type,
               coalesce(nullif(s.location, ''), d.location) as location,
               (select string_agg(x.sensor_id::text, ',' order by x.sensor_id)
                from sensors x where x.device_id = s.device_id) as siblings
        from sensors s join devices d on d.device_id = s.device_id
        where s.sensor_id = ${id}
      ),
      flexible as (
        select b as time, avg(v) as avg, min(v) as min, max(v) as max, count(*) as count
        from (
          select date_bin(${stride}::interval, time, ${BUCKET_ORIGIN}::timestamptz) as b,
                 value as v
          from measurements
          where sensor_id = ${id} and metric_type = ${metric}
            and time >= ${start} and time < ${end}
          offset 0
        ) s
        group by b
      )
      select sensor.*, null::json as columnar,
             (select json_agg(json_build_array(time, avg, min, max, count) order by time)
              from flexible) as flexible
      from sensor`;
  }
  const col = ident(metric);
  return q.sql<HistoryRow>`
    with sensor as materialized (
      select s.device_id, d.device_name, s.sensor_type,
             coalesce(nullif(s.location, ''), d.location) as location,
             (select string_agg(x.sensor_id::text, ',' order by x.sensor_id)
              from sensors x where x.device_id = s.device_id) as siblings
      from sensors s join devices d on d.device_id = s.device_id
      where s.sensor_id = ${id}
    ),
    columnar as (
      select b as time, avg(v) as avg, min(v) as min, max(v) as max, count(*) as count
      from (
        select date_bin(${stride}::interval, time, ${BUCKET_ORIGIN}::timestamptz) as b,
               ${col} as v
        from ${ident(`${o.target.sensor.sensorType}_measurements`)}
        where sensor_id = ${id} and time >= ${start} and time < ${end}
          and ${col} is not null
        offset 0
      ) s
      group by b
    ),
    flexible as (
      select b as time, avg(v) as avg, min(v) as min, max(v) as max, count(*) as count
      from (
        select date_bin(${stride}::interval, time, ${BUCKET_ORIGIN}::timestamptz) as b,
               value as v
        from measurements
        where sensor_id = ${id} and metric_type = ${metric}
          and time >= ${start} and time < ${end}
          and not exists (select from columnar)
        offset 0
      ) s
      group by b
    )
    select sensor.*,
           (select json_agg(json_build_array(time, avg, min, max, count) order by time)
            from columnar) as columnar,
           (select json_agg(json_build_array(time, avg, min, max, count) order by time)
            from flexible) as flexible
    from sensor`;
}

/**
 * Points from a JSON array of `[time, avg, min, max, count]`. Numbers keep every digit: JSON
 * carries a double precision value as the same shortest exact text as the row format.
 */
function parsePoints(value: unknown): HistoryPoint[] {
  if (value === null || value === undefined) return [];
  const list = (typeof value === "string" ? JSON.parse(value) : value) as unknown[][];
  return list.map(([time, avg, min, max, count]) => ({
    time: new Date(time as string),
    avg: Number(avg),
    min: Number(min),
    max: Number(max),
    count: Number(count),
  }));
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
