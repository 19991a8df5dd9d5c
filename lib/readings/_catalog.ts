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
  /** The device's room (`devices.location`). */
  room: string | null;
  /** Where the sensor itself sits (`sensors.location`), e.g. "wardrobe shelf". */
  placement: string | null;
  /** Last status the device reported (online, offline, unknown). */
  deviceStatus: string;
  /** Time of the sensor's newest stored reading. */
  lastSeen: Date | null;
}

/** What the readings functions need to know before touching a measurement table. */
export interface Catalog {
  /** Every sensor with its device, ordered by device, sensor type and id. */
  sensors: SensorInfo[];
  /** Sensor type → the `double precision` (metric) columns of its columnar table. */
  columnar: Map<string, string[]>;
  /** Units from the `metrics` table, keyed `sensor_type/metric`. */
  units: Map<string, string | null>;
  /** Measurement tables whose rollups are kept (`rollup_sources`). */
  rolledUp: Set<string>;
  /** Table → time before which retention removed its raw readings (`raw_retention`). */
  horizons: Map<string, Date>;
  /** Sensor id → the metrics its rollups hold readings of, in name order. */
  reported: Map<number, string[]>;
  /**
   * `sensor_id/metric` → the layouts its rollups hold readings in, each with the readings per
   * minute (with a reading) of its newest day: how much a minute rollup condenses raw readings.
   */
  layouts: Map<string, Map<Layout, number>>;
}

/** A table layout of the readings. */
export type Layout = "columnar" | "flexible";

/**
 * Loads sensors (with device, room and placement), columnar metric columns, units, the tables
 * with rollups, retention horizons and the metrics each sensor has reported, in one statement
 * (one round trip: the embedded database runs statements one at a time). Columns come from the
 * system catalog, which is several times faster than information_schema; reported metrics and
 * their layouts from a loose index scan of `rollup_1d` (one probe per sensor, metric and layout,
 * and one more for the newest day of each).
 */
export async function loadCatalog(db: Queryable): Promise<Catalog> {
  const [row] = await db.sql<
    {
      sensors: unknown;
      columns: unknown;
      units: unknown;
      rolled_up: unknown;
      horizons: unknown;
      reported: unknown;
    }
  >`
    select
      (select coalesce(json_agg(json_build_object(
                'sensor_id', s.sensor_id, 'device_id', s.device_id,
                'device_name', d.device_name, 'sensor_type', s.sensor_type,
                'room', nullif(d.location, ''), 'placement', nullif(s.location, ''),
                'status', d.status, 'last_seen', s.last_seen)
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
       from metrics) as units,
      (select coalesce(json_agg(table_name), '[]') from rollup_sources) as rolled_up,
      (select coalesce(json_agg(json_build_array(table_name, before)), '[]')
       from raw_retention) as horizons,
      (with recursive m(sensor_id, metric, layout) as (
         select s.sensor_id, x.metric, x.layout
         from sensors s cross join lateral (
           select x.metric, x.layout from rollup_1d x where x.sensor_id = s.sensor_id
           order by x.metric, x.layout limit 1) x
         union all
         select m.sensor_id, x.metric, x.layout
         from m cross join lateral (
           select x.metric, x.layout from rollup_1d x
           where x.sensor_id = m.sensor_id and (x.metric, x.layout) > (m.metric, m.layout)
           order by x.metric, x.layout limit 1) x
       )
       select coalesce(json_agg(json_build_array(m.sensor_id, m.metric, m.layout,
                                                 d.count::float8 / greatest(d.minutes, 1))
                                order by m.sensor_id, m.metric, m.layout), '[]')
       from m cross join lateral (
         select x.count, x.minutes from rollup_1d x
         where x.sensor_id = m.sensor_id and x.metric = m.metric and x.layout = m.layout
         order by x.bucket desc limit 1) d) as reported`;
  const sensors = json<{
    sensor_id: number;
    device_id: string;
    device_name: string | null;
    sensor_type: string;
    room: string | null;
    placement: string | null;
    status: string;
    last_seen: string | null;
  }>(row.sensors).map((r) => ({
    sensorId: Number(r.sensor_id),
    deviceId: r.device_id,
    deviceName: r.device_name,
    sensorType: r.sensor_type,
    location: r.placement ?? r.room,
    room: r.room,
    placement: r.placement,
    deviceStatus: r.status,
    lastSeen: r.last_seen === null ? null : new Date(r.last_seen),
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
  const reported = new Map<number, string[]>();
  const layouts = new Map<string, Map<Layout, number>>();
  for (const [id, metric, layout, rate] of json<[number, string, Layout, number]>(row.reported)) {
    const key = `${id}/${metric}`;
    if (!layouts.has(key)) {
      layouts.set(key, new Map());
      reported.set(Number(id), [...(reported.get(Number(id)) ?? []), metric]);
    }
    layouts.get(key)!.set(layout, Number(rate));
  }
  return {
    sensors,
    columnar,
    units,
    rolledUp: new Set(json<string>(row.rolled_up)),
    horizons: new Map(json<[string, string]>(row.horizons).map(([t, b]) => [t, new Date(b)])),
    reported,
    layouts,
  };
}

/**
 * Whether the metrics of `sensor` are known from its rollups: every table its readings can be in
 * (its type's columnar table, when there is one, and `measurements`) keeps rollups.
 */
export function hasRollups(catalog: Catalog, sensorType: string): boolean {
  const table = `${sensorType}_measurements`;
  return catalog.rolledUp.has("measurements") &&
    (!catalog.columnar.has(sensorType) || catalog.rolledUp.has(table));
}

/**
 * The metrics a sensor has: those it has reported (from its rollups) when its tables keep
 * rollups, so a metric its type has a column for but never measured (a BMP280's humidity) is not
 * listed; else every column of its type's table and every `metrics` row of its type.
 */
export function sensorMetrics(catalog: Catalog, sensor: SensorInfo): string[] {
  if (hasRollups(catalog, sensor.sensorType)) return catalog.reported.get(sensor.sensorId) ?? [];
  return [
    ...new Set([
      ...(catalog.columnar.get(sensor.sensorType) ?? []),
      ...listedMetrics(catalog.units, sensor.sensorType),
    ]),
  ].sort();
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

/** A place name as people type it: case, spaces, `_` and `-` do not matter ("Living room"). */
export function placeKey(name: string | null | undefined): string {
  return (name ?? "").toLowerCase().replace(/[\s_-]+/g, " ").trim();
}

/** The names a sensor can be found by: its device's room and its own placement. */
export function placesOf(s: SensorInfo): string[] {
  return [s.room, s.placement].filter((p): p is string => !!p);
}

/**
 * Every room with the placements of its sensors, as the choices of an error or a completion:
 * `bedroom (bedside table, wardrobe shelf)`.
 */
export function knownPlaces(sensors: SensorInfo[]): string[] {
  const rooms = new Map<string, Set<string>>();
  for (const s of sensors) {
    const room = s.room ?? s.placement;
    if (!room) continue;
    const spots = rooms.get(room) ?? new Set();
    if (s.placement && s.placement !== room) spots.add(s.placement);
    rooms.set(room, spots);
  }
  return [...rooms].map(([room, spots]) =>
    spots.size > 0 ? `${room} (${[...spots].sort().join(", ")})` : room
  ).sort();
}

/**
 * The sensors at `location`: those whose device's room or own placement matches it exactly
 * (ignoring case, spaces, `_` and `-`: "living room" finds "living_room"), else those where one
 * of them contains it ("bed" finds "Bedroom"). "bedroom" finds every sensor of the board in the
 * bedroom, whatever shelf each sits on; "wardrobe shelf" finds only the one there.
 */
export function sensorsAtLocation(sensors: SensorInfo[], location: string): SensorInfo[] {
  const want = placeKey(location);
  const keys = (s: SensorInfo) => placesOf(s).map(placeKey);
  const exact = sensors.filter((s) => keys(s).includes(want));
  if (exact.length > 0) return exact;
  const partial = want === "" ? [] : sensors.filter((s) => keys(s).some((k) => k.includes(want)));
  if (partial.length > 0) return partial;
  const places = knownPlaces(sensors);
  throw new ReadingsError(
    `Unknown location "${location}". Known rooms (and where their sensors sit): ${
      listChoices(places)
    }`,
    [...new Set(sensors.flatMap(placesOf))].sort(),
  );
}
