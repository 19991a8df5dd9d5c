import { isValidIdent, type Queryable } from "../db/mod.ts";
import { ReadingsError } from "./readings_error.ts";

/** A sensor with its device, as the readings functions report it. */
export interface SensorInfo {
  sensorId: number;
  deviceId: string;
  deviceName: string | null;
  sensorType: string;
  /** The sensor's own location, else its device's. */
  location: string | null;
}

/** What the readings functions need to know before touching a measurement table. */
export interface Catalog {
  /** Every sensor with its device, ordered by device, sensor type and id. */
  sensors: SensorInfo[];
  /** Sensor type → the `double precision` (metric) columns of its columnar table. */
  columnar: Map<string, string[]>;
  /** Units from the `metrics` table, keyed `sensor_type/metric`. */
  units: Map<string, string | null>;
}

/**
 * Loads sensors, columnar metric columns and units in one statement (one round trip: the
 * embedded database runs statements one at a time). Columns come from the system catalog, which
 * is several times faster than information_schema.
 */
export async function loadCatalog(db: Queryable): Promise<Catalog> {
  const [row] = await db.sql<{ sensors: unknown; columns: unknown; units: unknown }>`
    select
      (select coalesce(json_agg(json_build_object(
                'sensor_id', s.sensor_id, 'device_id', s.device_id,
                'device_name', d.device_name, 'sensor_type', s.sensor_type,
                'location', coalesce(nullif(s.location, ''), d.location))
              order by s.device_id, s.sensor_type, s.sensor_id), '[]')
       from sensors s join devices d on d.device_id = s.device_id) as sensors,
      (select coalesce(json_agg(json_build_object('table', c.relname, 'column', a.attname)
              order by c.relname, a.attnum), '[]')
       from pg_attribute a
       join pg_class c on c.oid = a.attrelid
       join pg_namespace n on n.oid = c.relnamespace
       where n.nspname = current_schema() and c.relkind in ('r', 'p')
         and c.relname like '%\\_measurements' and c.relname <> 'measurements'
         and a.attnum > 0 and not a.attisdropped and a.atttypid = 'float8'::regtype) as columns,
      (select coalesce(json_agg(json_build_object(
                'sensor_type', sensor_type, 'metric', metric, 'unit', unit)), '[]')
       from metrics) as units`;
  const sensors = json<{
    sensor_id: number;
    device_id: string;
    device_name: string | null;
    sensor_type: string;
    location: string | null;
  }>(row.sensors).map((r) => ({
    sensorId: Number(r.sensor_id),
    deviceId: r.device_id,
    deviceName: r.device_name,
    sensorType: r.sensor_type,
    location: r.location,
  }));
  const columnar = new Map<string, string[]>();
  for (const r of json<{ table: string; column: string }>(row.columns)) {
    if (!isValidIdent(r.table) || !isValidIdent(r.column)) continue;
    const type = r.table.slice(0, -"_measurements".length);
    columnar.set(type, [...(columnar.get(type) ?? []), r.column]);
  }
  const units = new Map(
    json<{ sensor_type: string; metric: string; unit: string | null }>(row.units)
      .map((r) => [`${r.sensor_type}/${r.metric}`, r.unit]),
  );
  return { sensors, columnar, units };
}

/** The metrics the `metrics` table lists for `sensorType`, from `Catalog.units`. */
export function listedMetrics(units: Catalog["units"], sensorType: string): string[] {
  const prefix = `${sensorType}/`;
  return [...units.keys()].filter((k) => k.startsWith(prefix)).map((k) => k.slice(prefix.length));
}

/** A json column as parsed by the driver (postgres.js and PGlite parse it; text is parsed here). */
function json<T>(value: unknown): T[] {
  return (typeof value === "string" ? JSON.parse(value) : value) as T[];
}

/** The newest value of one metric of one sensor in the flexible `measurements` table. */
export interface FlexibleLatest {
  sensorId: number;
  metric: string;
  time: Date;
  value: number;
}

/**
 * The newest value of every metric each sensor has in the flexible `measurements` table, ordered
 * by sensor and metric. The metrics are found with a loose index scan (one index probe per
 * distinct metric instead of reading every row), each newest value with one more probe.
 */
export async function loadFlexibleLatest(
  db: Queryable,
  sensorIds: number[],
): Promise<FlexibleLatest[]> {
  if (sensorIds.length === 0) return [];
  const rows = await db.sql<{ sensor_id: number; metric_type: string; time: Date; value: number }>`
    with recursive m(sensor_id, metric_type) as (
      select s.sensor_id,
             (select x.metric_type from measurements x where x.sensor_id = s.sensor_id
              order by x.metric_type limit 1)
      from unnest(${sensorIds}::int[]) as s(sensor_id)
      union all
      select m.sensor_id,
             (select x.metric_type from measurements x
              where x.sensor_id = m.sensor_id and x.metric_type > m.metric_type
              order by x.metric_type limit 1)
      from m where m.metric_type is not null
    )
    select m.sensor_id, m.metric_type, l.time, l.value
    from m cross join lateral (
      select x.time, x.value from measurements x
      where x.sensor_id = m.sensor_id and x.metric_type = m.metric_type
      order by x.time desc
      limit 1
    ) l
    where m.metric_type is not null
    order by m.sensor_id, m.metric_type`;
  return rows.map((r) => ({
    sensorId: Number(r.sensor_id),
    metric: r.metric_type,
    time: r.time,
    value: Number(r.value),
  }));
}

/** Metric names each sensor has in the flexible `measurements` table, in name order. */
export async function loadFlexibleMetrics(
  db: Queryable,
  sensorIds: number[],
): Promise<Map<number, string[]>> {
  const out = new Map<number, string[]>();
  for (const r of await loadFlexibleLatest(db, sensorIds)) {
    const list = out.get(r.sensorId) ?? [];
    list.push(r.metric);
    out.set(r.sensorId, list);
  }
  return out;
}

/** Lists `items` for an error message, capped so a large fleet does not flood the answer. */
export function listChoices(items: string[], max = 40): string {
  if (items.length === 0) return "(none)";
  const shown = items.slice(0, max).join(", ");
  return items.length > max ? `${shown} … and ${items.length - max} more` : shown;
}

/** How a device is named in choices: `id ("name")`. */
export function deviceLabel(s: { deviceId: string; deviceName: string | null }): string {
  return s.deviceName && s.deviceName !== s.deviceId
    ? `${s.deviceId} ("${s.deviceName}")`
    : s.deviceId;
}

/** The sensors of the device whose id or name (case-insensitive) is `device`. */
export function sensorsOfDevice(sensors: SensorInfo[], device: string): SensorInfo[] {
  const want = device.trim().toLowerCase();
  const byId = sensors.filter((s) => s.deviceId.toLowerCase() === want);
  const found = byId.length > 0
    ? byId
    : sensors.filter((s) => (s.deviceName ?? "").trim().toLowerCase() === want);
  if (found.length === 0) {
    const devices = [...new Set(sensors.map(deviceLabel))];
    throw new ReadingsError(
      `Unknown device "${device}". Known devices (id or name): ${listChoices(devices)}`,
      devices,
    );
  }
  return found;
}

/**
 * The sensors at `location`: an exact case-insensitive match on the sensor's or device's
 * location, else those whose location contains it ("bed" finds "Bedroom").
 */
export function sensorsAtLocation(sensors: SensorInfo[], location: string): SensorInfo[] {
  const want = location.trim().toLowerCase();
  const loc = (s: SensorInfo) => (s.location ?? "").toLowerCase();
  const exact = sensors.filter((s) => loc(s) === want);
  if (exact.length > 0) return exact;
  const partial = want === "" ? [] : sensors.filter((s) => loc(s).includes(want));
  if (partial.length > 0) return partial;
  const locations = [...new Set(sensors.map((s) => s.location).filter((l): l is string => !!l))];
  throw new ReadingsError(
    `Unknown location "${location}". Known locations: ${listChoices(locations)}`,
    locations,
  );
}
