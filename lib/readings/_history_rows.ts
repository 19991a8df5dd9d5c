import { ident, type Queryable } from "../db/mod.ts";
import { type Bucket, BUCKET_ORIGIN } from "./choose_bucket.ts";
import type { HistoryPoint } from "./sensor_history.ts";

/** Options of `historyRows`. */
export interface HistoryRowsOptions {
  sensorId: number;
  /** The columnar table holding the metric as a column; undefined: the flexible layout only. */
  table?: string;
  metric: string;
  bucket: Bucket;
  start: Date;
  end: Date;
}

/** The sensor as the database has it now, with the points of each layout. */
export interface HistoryRows {
  deviceId: string;
  deviceName: string | null;
  sensorType: string;
  /** The sensor's own location, else its device's. */
  location: string | null;
  /** Ids of the device's sensors, ascending and comma-separated. */
  siblings: string | null;
  /** Points from the columnar table; null when it has none in the period (or no table). */
  columnar: HistoryPoint[] | null;
  /** Points from the flexible table; null when it has none or was not read. */
  flexible: HistoryPoint[] | null;
}

interface Row {
  device_id: string;
  device_name: string | null;
  sensor_type: string;
  location: string | null;
  siblings: string | null;
  columnar: unknown;
  flexible: unknown;
}

/**
 * Aggregates one metric of one sensor per time bucket in a single statement, which also reads the
 * sensor's current row; undefined when the sensor does not exist.
 *
 * Each aggregate groups a subquery kept apart by `offset 0`: the planner then assumes a few
 * hundred buckets and hashes them, instead of sorting every reading because it takes each
 * distinct timestamp for a bucket of its own. The flexible table is read only when the columnar
 * one has no reading in the period (an uncorrelated `not exists`, checked once before that scan
 * starts). The points come back as one JSON array of `[time, avg, min, max, count]` per layout:
 * one row crosses from the database instead of one per bucket, which the embedded database hands
 * over markedly faster.
 */
export async function historyRows(
  q: Queryable,
  o: HistoryRowsOptions,
): Promise<HistoryRows | undefined> {
  const id = o.sensorId;
  const stride = `${o.bucket.seconds} seconds`;
  const { start, end, metric } = o;
  let rows: Row[];
  if (o.table === undefined) {
    rows = await q.sql<Row>`
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
  } else {
    const col = ident(metric);
    rows = await q.sql<Row>`
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
          from ${ident(o.table)}
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
  const [r] = rows;
  if (r === undefined) return undefined;
  return {
    deviceId: r.device_id,
    deviceName: r.device_name,
    sensorType: r.sensor_type,
    location: r.location,
    siblings: r.siblings,
    columnar: parsePoints(r.columnar),
    flexible: parsePoints(r.flexible),
  };
}

/**
 * Points from a JSON array of `[time, avg, min, max, count]`. Numbers keep every digit: JSON
 * carries a double precision value as the same shortest exact text as a result row does.
 */
function parsePoints(value: unknown): HistoryPoint[] | null {
  if (value === null || value === undefined) return null;
  const list = (typeof value === "string" ? JSON.parse(value) : value) as unknown[][];
  return list.map(([time, avg, min, max, count]) => ({
    time: new Date(time as string),
    avg: Number(avg),
    min: Number(min),
    max: Number(max),
    count: Number(count),
  }));
}
