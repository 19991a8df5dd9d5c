import { isValidIdent, type Queryable } from "../db/mod.ts";
import type { SourcePiece } from "./plan_sources.ts";
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
  /** How the period is covered (see `planSources`); default: raw readings only. */
  pieces?: SourcePiece[];
  /**
   * Read the flexible layout when the columnar one has nothing in the period (default true);
   * false reads only the columnar table (`table` must be set).
   */
  flexible?: boolean;
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
  /** The later retention horizon of the tables read (see `raw_retention`), in epoch ms. */
  horizon: number | null;
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
  horizon: Date | string | null;
  columnar: unknown;
  flexible: unknown;
}

/**
 * Aggregates one metric of one sensor per time bucket in a single statement, which also reads the
 * sensor's current row; undefined when the sensor does not exist.
 *
 * The period is covered by `pieces` (see `planSources`): each piece reads raw readings or a
 * rollup as (time, count, sum, min, max) rows, and the union is re-aggregated per answer bucket,
 * avg = sum / count, so rollups and raw readings combine exactly. The union is kept apart by
 * `offset 0`: the planner then assumes a few hundred buckets and hashes them, instead of sorting
 * every reading because it takes each distinct timestamp for a bucket of its own. The flexible
 * layout is read only when the columnar one has nothing in the period (an uncorrelated
 * `not exists`, checked once before that scan starts). The points come back as one JSON array of
 * `[time, avg, min, max, count]` per layout: one row crosses from the database instead of one per
 * bucket, which the embedded database hands over markedly faster.
 */
export async function historyRows(
  q: Queryable,
  o: HistoryRowsOptions,
): Promise<HistoryRows | undefined> {
  const params: unknown[] = [];
  const p = (v: unknown) => `$${params.push(v)}`;
  const id = p(o.sensorId);
  // a parameter only when some part names it (an unused one has no type PostgreSQL can infer)
  let metricParam: string | undefined;
  const metric = () => metricParam ??= p(o.metric);
  const stride = p(`${o.bucket.seconds} seconds`);
  const origin = p(BUCKET_ORIGIN.toISOString());
  const pieces = o.pieces ?? [{ source: "raw" as const, start: o.start, end: o.end }];
  const bounds = pieces.map((x) => [p(x.start.toISOString()), p(x.end.toISOString())]);
  const parts = (layout: "columnar" | "flexible", extra: string) =>
    pieces.map((x, i) => {
      const [a, b] = bounds[i];
      if (x.source !== "raw") {
        return `select bucket as t, count as c, sum as s, min as lo, max as hi from ${x.source}
          where sensor_id = ${id} and metric = ${metric()} and layout = '${layout}'
            and bucket >= ${a}::timestamptz and bucket < ${b}::timestamptz${extra}`;
      }
      if (layout === "flexible") {
        return `select time as t, 1::bigint as c, value as s, value as lo, value as hi
          from measurements
          where sensor_id = ${id} and metric_type = ${metric()}
            and time >= ${a}::timestamptz and time < ${b}::timestamptz${extra}`;
      }
      const col = quoted(o.metric);
      return `select time as t, 1::bigint as c, ${col} as s, ${col} as lo, ${col} as hi
        from ${quoted(o.table!)}
        where sensor_id = ${id} and time >= ${a}::timestamptz and time < ${b}::timestamptz
          and ${col} is not null`;
    }).join("\n        union all\n        ");
  const aggregate = (layout: "columnar" | "flexible", extra: string) => `
      select date_bin(${stride}::interval, t, ${origin}::timestamptz) as time,
             sum(s) / sum(c) as avg, min(lo) as min, max(hi) as max, sum(c) as count
      from (
        ${parts(layout, extra)}
        offset 0
      ) u
      group by 1`;
  const columnar = o.table !== undefined;
  const text = `
    with sensor as materialized (
      select s.device_id, d.device_name, s.sensor_type,
             coalesce(nullif(s.location, ''), d.location) as location,
             (select string_agg(x.sensor_id::text, ',' order by x.sensor_id)
              from sensors x where x.device_id = s.device_id) as siblings,
             (select max(r.before) from raw_retention r
              where r.table_name in ('measurements', ${p(o.table ?? "measurements")})) as horizon
      from sensors s join devices d on d.device_id = s.device_id
      where s.sensor_id = ${id}
    ),
    columnar as (${columnar ? aggregate("columnar", "") : NONE}),
    flexible as (${
    o.flexible === false && columnar
      ? NONE
      : aggregate("flexible", columnar ? " and not exists (select from columnar)" : "")
  })
    select sensor.*,
           (select json_agg(json_build_array(time, avg, min, max, count) order by time)
            from columnar) as columnar,
           (select json_agg(json_build_array(time, avg, min, max, count) order by time)
            from flexible) as flexible
    from sensor`;
  const { rows } = await q.query<Row>(text, params);
  const [r] = rows;
  if (r === undefined) return undefined;
  return {
    deviceId: r.device_id,
    deviceName: r.device_name,
    sensorType: r.sensor_type,
    location: r.location,
    siblings: r.siblings,
    horizon: r.horizon === null ? null : new Date(r.horizon).getTime(),
    columnar: parsePoints(r.columnar),
    flexible: parsePoints(r.flexible),
  };
}

/** An aggregate of no rows, for a layout that is not read. */
const NONE = "select null::timestamptz as time, null::float8 as avg, null::float8 as min, " +
  "null::float8 as max, null::numeric as count where false";

/** `name` as a quoted identifier; only names `isValidIdent` accepts get this far. */
function quoted(name: string): string {
  if (!isValidIdent(name)) throw new RangeError(`Not a valid SQL identifier: "${name}"`);
  return `"${name}"`;
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
