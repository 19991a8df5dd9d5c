import { type Db, ident } from "../db/mod.ts";
import {
  loadCatalog,
  loadFlexibleLatest,
  type SensorInfo,
  sensorsAtLocation,
  sensorsOfDevice,
} from "./_catalog.ts";

/** How far back a metric missing from a sensor's newest columnar row is looked for. */
const LOOKBACK_ROWS = 100;

/** The newest value of one metric of one sensor. */
export interface LatestReading extends SensorInfo {
  metric: string;
  value: number;
  /** From the `metrics` table; null when the metric has no unit recorded. */
  unit: string | null;
  time: Date;
  /** Seconds between `time` and `now` (negative when the device clock runs ahead). */
  ageS: number;
}

/** Options of `latestReadings`. */
export interface LatestReadingsOptions {
  /** Only this device: its id or name, case-insensitive. */
  device?: string;
  /** Only sensors at this location (sensor's or device's), case-insensitive; a part matches too. */
  location?: string;
  /** Only these sensors (used by the sensor resources). */
  sensorIds?: number[];
  /** The clock ages are measured against (default: the current time). */
  now?: Date;
}

/** What `latestReadings` found. */
export interface LatestReadingsResult {
  /** Every sensor that matched the filters, with or without readings. */
  sensors: SensorInfo[];
  /** One entry per sensor and metric, ordered by device, sensor type and metric. */
  readings: LatestReading[];
}

/**
 * The newest value of every metric of every matching sensor, from whichever layout holds it
 * (columnar `<type>_measurements` and flexible `measurements`; the newer wins, columnar on a tie).
 * Each lookup is one `order by time desc limit 1` per sensor through a LATERAL join, so it reads
 * a handful of index entries however large the tables are. A metric missing from a sensor's
 * newest columnar row is taken from the sensor's last 100 rows, when it appears there.
 *
 * @throws {ReadingsError} for an unknown device or location, listing the known ones.
 */
export async function latestReadings(
  db: Db,
  opts: LatestReadingsOptions = {},
): Promise<LatestReadingsResult> {
  const now = opts.now ?? new Date();
  const { sensors: all, columnar, units } = await loadCatalog(db);
  let sensors = all;
  if (opts.sensorIds) {
    const wanted = new Set(opts.sensorIds);
    sensors = sensors.filter((s) => wanted.has(s.sensorId));
  }
  if (opts.device !== undefined && opts.device.trim() !== "") {
    sensors = sensorsOfDevice(sensors, opts.device);
  }
  if (opts.location !== undefined && opts.location.trim() !== "") {
    sensors = sensorsAtLocation(sensors, opts.location);
  }
  if (sensors.length === 0) return { sensors, readings: [] };

  // sensor_id → metric → newest { value, time, columnar }
  const newest = new Map<number, Map<string, { value: number; time: Date; columnar: boolean }>>();
  const offer = (id: number, metric: string, value: number, time: Date, isColumnar: boolean) => {
    let m = newest.get(id);
    if (!m) newest.set(id, m = new Map());
    const cur = m.get(metric);
    const newer = !cur || time.getTime() > cur.time.getTime() ||
      (time.getTime() === cur.time.getTime() && isColumnar && !cur.columnar);
    if (newer) m.set(metric, { value, time, columnar: isColumnar });
  };

  const byType = new Map<string, number[]>();
  for (const s of sensors) {
    if (!columnar.has(s.sensorType)) continue;
    byType.set(s.sensorType, [...(byType.get(s.sensorType) ?? []), s.sensorId]);
  }
  const ids = sensors.map((s) => s.sensorId);
  const columnarQueries = [...byType].map(async ([type, typeIds]) => {
    const cols = columnar.get(type)!;
    const rows = await db.sql<Record<string, unknown>>`
      select s.sensor_id, m.*
      from unnest(${typeIds}::int[]) as s(sensor_id)
      cross join lateral (
        select t.time, ${cols.map((c) => ident(c))}
        from ${ident(`${type}_measurements`)} t
        where t.sensor_id = s.sensor_id
        order by t.time desc
        limit 1
      ) m`;
    // Per column, the sensors whose newest row lacks it.
    const missing = new Map<string, number[]>();
    for (const r of rows) {
      for (const c of cols) {
        const v = r[c];
        if (typeof v === "number") offer(Number(r.sensor_id), c, v, r.time as Date, true);
        else if (v === null) missing.set(c, [...(missing.get(c) ?? []), Number(r.sensor_id)]);
      }
    }
    // A metric missing from the newest row (a failed read, or one the sensor never reports):
    // its newest value among the last LOOKBACK_ROWS rows — still a bounded index range, one
    // plain column read per missing metric (no per-row JSON, which cost ~8 ms per sensor).
    await Promise.all([...missing].map(async ([c, ids]) => {
      const older = await db.sql<{ sensor_id: number; time: Date; value: number }>`
        select s.sensor_id, m.time, m.value
        from unnest(${ids}::int[]) as s(sensor_id)
        cross join lateral (
          select x.time, x.v::float8 as value
          from (
            select t.time, ${ident(c)} as v from ${ident(`${type}_measurements`)} t
            where t.sensor_id = s.sensor_id
            order by t.time desc
            limit ${LOOKBACK_ROWS}
          ) x
          where x.v is not null
          order by x.time desc
          limit 1
        ) m`;
      for (const r of older) offer(Number(r.sensor_id), c, Number(r.value), r.time, true);
    }));
  });
  const flexibleQuery = (async () => {
    for (const r of await loadFlexibleLatest(db, ids)) {
      offer(r.sensorId, r.metric, r.value, r.time, false);
    }
  })();
  await Promise.all([...columnarQueries, flexibleQuery]);

  const readings: LatestReading[] = [];
  for (const s of sensors) {
    const m = newest.get(s.sensorId);
    if (!m) continue;
    for (const metric of [...m.keys()].sort()) {
      const { value, time } = m.get(metric)!;
      readings.push({
        ...s,
        metric,
        value,
        unit: units.get(`${s.sensorType}/${metric}`) ?? null,
        time,
        ageS: Math.round((now.getTime() - time.getTime()) / 1000),
      });
    }
  }
  return { sensors, readings };
}
