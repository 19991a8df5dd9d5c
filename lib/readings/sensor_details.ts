import { type Db, ident } from "../db/mod.ts";
import {
  hasRollups,
  listChoices,
  listedMetrics,
  loadCatalog,
  loadFlexibleMetrics,
} from "./_catalog.ts";
import { latestReadings } from "./latest_readings.ts";
import { ReadingsError } from "./readings_error.ts";

/** Everything known about one sensor, for its `sensor://{sensor_id}` resource. */
export interface SensorDetails {
  sensor_id: number;
  sensor_type: string;
  location: string | null;
  metadata: unknown;
  device: {
    device_id: string;
    device_name: string | null;
    location: string | null;
    firmware_version: string | null;
    status: string;
    last_seen: string | null;
  };
  /** Metrics with unit and the layouts that hold them for this sensor. */
  metrics: { metric: string; unit: string | null; layouts: ("columnar" | "flexible")[] }[];
  /** Time of the oldest stored reading, or null when there is none. */
  first_reading: string | null;
  latest: { metric: string; value: number; unit: string | null; time: string; age_s: number }[];
}

/**
 * Details of one sensor: its device, metrics with units, where its readings are stored, the
 * time of its first reading and its latest values.
 *
 * @throws {ReadingsError} for an unknown sensor id, listing the known ones.
 */
export async function sensorDetails(db: Db, sensorId: number, now = new Date()): Promise<
  SensorDetails
> {
  const [row] = await db.sql<{
    sensor_id: number;
    sensor_type: string;
    location: string | null;
    metadata: unknown;
    device_id: string;
    device_name: string | null;
    device_location: string | null;
    firmware_version: string | null;
    status: string;
    last_seen: Date | null;
  }>`
    select s.sensor_id, s.sensor_type, s.location, s.metadata, d.device_id, d.device_name,
           d.location as device_location, d.firmware_version, d.status,
           greatest(s.last_seen, d.last_seen) as last_seen
    from sensors s join devices d on d.device_id = s.device_id
    where s.sensor_id = ${sensorId}`;
  if (!row) {
    const ids = (await db.sql<{ sensor_id: number }>`
      select sensor_id from sensors order by sensor_id`).map((r) => String(r.sensor_id));
    throw new ReadingsError(
      `Unknown sensor_id ${sensorId}. Known sensor ids: ${listChoices(ids)}`,
      ids,
    );
  }
  const [catalog, flexible, latest] = await Promise.all([
    loadCatalog(db),
    loadFlexibleMetrics(db, [sensorId]),
    latestReadings(db, { sensorIds: [sensorId], now }),
  ]);
  const { columnar, units } = catalog;
  const allCols = columnar.get(row.sensor_type) ?? [];
  const flex = flexible.get(sensorId) ?? [];
  const firsts: Date[] = [];
  if (allCols.length > 0) {
    const [f] = await db.sql<{ time: Date }>`
      select time from ${ident(`${row.sensor_type}_measurements`)}
      where sensor_id = ${sensorId} order by time limit 1`;
    if (f) firsts.push(f.time);
  }
  // The columnar table counts as holding this sensor's metrics only when it has rows for it.
  // With rollups, only the metrics it reported (a BMP280's empty humidity column is left out).
  const reported = hasRollups(catalog, row.sensor_type)
    ? new Set(catalog.reported.get(sensorId) ?? [])
    : undefined;
  const cols = (firsts.length > 0 ? allCols : []).filter((m) => !reported || reported.has(m));
  const names = new Set(
    [...cols, ...flex, ...listedMetrics(units, row.sensor_type)]
      .filter((m) => !reported || reported.has(m)),
  );

  if (flex.length > 0) {
    // One index probe per metric, in one statement.
    const [f] = await db.sql<{ time: Date | null }>`
      select min(f.time) as time
      from unnest(${flex}::text[]) as m(metric)
      cross join lateral (
        select time from measurements where sensor_id = ${sensorId} and metric_type = m.metric
        order by time limit 1
      ) f`;
    if (f?.time) firsts.push(new Date(f.time));
  }
  const first = firsts.sort((a, b) => a.getTime() - b.getTime())[0];

  return {
    sensor_id: Number(row.sensor_id),
    sensor_type: row.sensor_type,
    location: row.location ?? row.device_location,
    metadata: row.metadata,
    device: {
      device_id: row.device_id,
      device_name: row.device_name,
      location: row.device_location,
      firmware_version: row.firmware_version,
      status: row.status,
      last_seen: row.last_seen ? new Date(row.last_seen).toISOString() : null,
    },
    metrics: [...names].sort().map((metric) => ({
      metric,
      unit: units.get(`${row.sensor_type}/${metric}`) ?? null,
      layouts: [
        ...(cols.includes(metric) ? ["columnar" as const] : []),
        ...(flex.includes(metric) ? ["flexible" as const] : []),
      ],
    })),
    first_reading: first ? first.toISOString() : null,
    latest: latest.readings.map((r) => ({
      metric: r.metric,
      value: r.value,
      unit: r.unit,
      time: r.time.toISOString(),
      age_s: r.ageS,
    })),
  };
}
