import type { Db, Queryable } from "../db/mod.ts";
import { within } from "./_within.ts";
import { roundPeriod } from "./_period.ts";
import type { SensorInfo } from "./_catalog.ts";
import { type ChosenMetric, type PlaceFilter, placeSensors } from "./_room_sensors.ts";
import { BUCKET_ORIGIN } from "./choose_bucket.ts";

/** Guide values the summary counts minutes against (README "Answers without SQL"). */
export const AIR_THRESHOLDS = {
  co2: { above: [1000, 1400] },
  temperature: { band: [19, 23] },
  humidity: { band: [40, 60] },
} as const;

/** Minutes below, within and above a comfort band. */
export interface BandMinutes {
  low: number;
  high: number;
  below: number;
  within: number;
  above: number;
}

/** min/avg/max of one metric of a place over the period, from the sensor chosen for it. */
export interface MetricSummary {
  metric: string;
  unit: string | null;
  sensorId: number;
  min: number;
  avg: number;
  max: number;
  /** Readings the figures come from. */
  readings: number;
  /** Minutes of the period with at least one reading. */
  minutes: number;
  /** CO2 only: minutes whose average was above each threshold, keyed by ppm. */
  above?: Record<string, number>;
  /** Temperature and humidity: minutes below, within and above the comfort band. */
  band?: BandMinutes;
}

/** Options of `airSummary`. */
export interface AirSummaryOptions extends PlaceFilter {
  start: Date;
  end: Date;
  /** Cancel the statement after this long, rejecting with `QueryTimeout`; default no limit. */
  timeoutMs?: number;
}

/** A summary of the air in one place over one period. */
export interface AirSummary {
  /** Start of the period, rounded down to the minute. */
  start: Date;
  /** End of the period (excluded), rounded up to the minute. */
  end: Date;
  /** Minutes in the period. */
  periodMinutes: number;
  /** The sensors the figures come from. */
  sensors: SensorInfo[];
  metrics: MetricSummary[];
  /**
   * Dew point in °C (Magnus formula) from the hourly mean temperature and humidity of the sensor
   * that measures both (minute means at the period's edges); null without such a sensor.
   */
  dewPoint: { sensorId: number; unit: "°C"; min: number; avg: number; max: number } | null;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;

/**
 * min/avg/max of every metric of a place from the rollups, the minutes CO2 spent above 1000 and
 * 1400 ppm, the minutes temperature and humidity spent below, within and above their comfort
 * bands (a minute counts by its average), and the dew point. Whole hours are judged from
 * `rollup_1h` (an hour whose every reading is on one side of a threshold counts all its minutes
 * with readings); only hours that cross a threshold, and the minutes at the period's edges, read
 * `rollup_1m`. One statement.
 *
 * @throws {ReadingsError} for an unknown place or an empty period.
 */
export async function airSummary(db: Db, opts: AirSummaryOptions): Promise<AirSummary> {
  const o = BUCKET_ORIGIN.getTime();
  const floor = (t: number, w: number) => o + Math.floor((t - o) / w) * w;
  const ceil = (t: number, w: number) => o + Math.ceil((t - o) / w) * w;
  const { start, end } = roundPeriod(opts.start, opts.end, MINUTE);
  const place = await placeSensors(db, opts);
  const hs = Math.min(ceil(start, HOUR), end);
  const he = Math.max(floor(end, HOUR), hs);
  const metricsOfPlace = place.metrics;
  const rows = await within(
    db,
    opts.timeoutMs,
    (q) => summaryRows(q, metricsOfPlace, { start, end, hs, he }),
  );
  const metrics: MetricSummary[] = [];
  for (const chosen of place.metrics) {
    const r = rows.stats.find((x) =>
      x.sensor_id === chosen.sensor.sensorId && x.metric === chosen.metric
    );
    if (!r || Number(r.n) === 0) continue;
    const m: MetricSummary = {
      metric: chosen.metric,
      unit: chosen.unit,
      sensorId: chosen.sensor.sensorId,
      min: Number(r.min),
      avg: Number(r.sum) / Number(r.n),
      max: Number(r.max),
      readings: Number(r.n),
      minutes: Number(r.minutes),
    };
    const counts = (kind: "above" | "below", v: number) =>
      Number(
        rows.thresholds.find((t) =>
          t.sensor_id === m.sensorId && t.metric === m.metric && t.kind === kind && t.v === v
        )?.minutes ?? 0,
      );
    if (m.metric === "co2") {
      m.above = Object.fromEntries(
        AIR_THRESHOLDS.co2.above.map((v) => [String(v), counts("above", v)]),
      );
    }
    if (m.metric === "temperature" || m.metric === "humidity") {
      const [low, high] = AIR_THRESHOLDS[m.metric].band;
      const below = counts("below", low), above = counts("above", high);
      m.band = { low, high, below, within: m.minutes - below - above, above };
    }
    metrics.push(m);
  }
  const dew = rows.dew;
  return {
    start: new Date(start),
    end: new Date(end),
    periodMinutes: (end - start) / MINUTE,
    sensors: place.sensors.filter((s) => metrics.some((m) => m.sensorId === s.sensorId)),
    metrics,
    dewPoint: dew && dew.n > 0
      ? { sensorId: dew.sensor_id, unit: "°C", min: dew.min, avg: dew.avg, max: dew.max }
      : null,
  };
}

interface StatRow {
  sensor_id: number;
  metric: string;
  n: number;
  sum: number;
  min: number;
  max: number;
  minutes: number;
}

interface ThresholdRow {
  sensor_id: number;
  metric: string;
  kind: "above" | "below";
  v: number;
  minutes: number;
}

interface DewRow {
  sensor_id: number;
  n: number;
  min: number;
  avg: number;
  max: number;
}

/** The statement behind `airSummary`: hour rows inside [hs, he), minute rows at the edges. */
async function summaryRows(
  db: Queryable,
  chosen: ChosenMetric[],
  t: { start: number; end: number; hs: number; he: number },
): Promise<{ stats: StatRow[]; thresholds: ThresholdRow[]; dew: DewRow | null }> {
  const iso = (ms: number) => new Date(ms).toISOString();
  const dewSensor = chosen.find((c) => c.metric === "humidity")?.sensor.sensorId ?? null;
  const [row] = await db.sql<{ stats: unknown; thresholds: unknown; dew: unknown }>`
    with sel as materialized (
      select s.sensor_id, s.metric,
             coalesce((select 'columnar' from rollup_1h r
                       where r.sensor_id = s.sensor_id and r.metric = s.metric
                         and r.layout = 'columnar' and r.bucket >= ${iso(t.start - HOUR)}
                         and r.bucket < ${iso(t.end)} limit 1), 'flexible') as layout
      from unnest(${chosen.map((c) => c.sensor.sensorId)}::int[],
                  ${chosen.map((c) => c.metric)}::text[]) as s(sensor_id, metric)
    ),
    -- whole hours, and the minutes at both edges
    h as materialized (
      select r.* from sel join rollup_1h r using (sensor_id, metric, layout)
      where r.bucket >= ${iso(t.hs)} and r.bucket < ${iso(t.he)}
    ),
    e as materialized (
      select r.* from sel join rollup_1m r using (sensor_id, metric, layout)
      where r.bucket >= ${iso(t.start)} and r.bucket < ${iso(t.hs)}
      union all
      select r.* from sel join rollup_1m r using (sensor_id, metric, layout)
      where r.bucket >= ${iso(t.he)} and r.bucket < ${iso(t.end)}
    ),
    -- the two thresholds of each metric
    th(metric, k1, v1, k2, v2) as (values ('co2', 'above', 1000::float8, 'above', 1400::float8),
      ('temperature', 'below', 19, 'above', 23), ('humidity', 'below', 40, 'above', 60)),
    -- per hour and threshold: 1 when all its minutes count, 0 when none does, null when the
    -- hour crosses the threshold and its minutes must be read
    hv as (
      select h.sensor_id, h.metric, h.layout, h.bucket, h.minutes, th.k1, th.v1, th.k2, th.v2,
             case when th.k1 = 'above' then
                    case when h.min > th.v1 then 1 when h.max <= th.v1 then 0 end
                  else case when h.max < th.v1 then 1 when h.min >= th.v1 then 0 end
             end as a1,
             case when th.k2 = 'above' then
                    case when h.min > th.v2 then 1 when h.max <= th.v2 then 0 end
                  else case when h.max < th.v2 then 1 when h.min >= th.v2 then 0 end
             end as a2
      from h join th using (metric)
    ),
    -- minutes beyond each threshold: whole hours by their verdict; an hour that crosses a
    -- threshold has its minutes read and counted by their own averages, in one pass per hour
    counted as (
      select sensor_id, metric, k1, v1, k2, v2, a1 * minutes as n1, a2 * minutes as n2
      from hv where a1 is not null and a2 is not null
      union all
      select hv.sensor_id, hv.metric, hv.k1, hv.v1, hv.k2, hv.v2,
             coalesce(hv.a1 * hv.minutes, x.n1), coalesce(hv.a2 * hv.minutes, x.n2)
      from hv cross join lateral (
        select count(*) filter (where case when hv.k1 = 'above' then m.sum / m.count > hv.v1
                                           else m.sum / m.count < hv.v1 end) as n1,
               count(*) filter (where case when hv.k2 = 'above' then m.sum / m.count > hv.v2
                                           else m.sum / m.count < hv.v2 end) as n2
        from rollup_1m m
        where m.sensor_id = hv.sensor_id and m.metric = hv.metric and m.layout = hv.layout
          and m.bucket >= hv.bucket and m.bucket < hv.bucket + interval '1 hour'
      ) x
      where hv.a1 is null or hv.a2 is null
      union all
      -- the minutes at the period's edges, each by its own average
      select e.sensor_id, e.metric, th.k1, th.v1, th.k2, th.v2,
             (case when th.k1 = 'above' then e.sum / e.count > th.v1
                   else e.sum / e.count < th.v1 end)::int,
             (case when th.k2 = 'above' then e.sum / e.count > th.v2
                   else e.sum / e.count < th.v2 end)::int
      from e join th using (metric)
    ),
    rows as (select * from h union all select * from e),
    dew as (
      select sensor_id,
             max(sum / count) filter (where metric = 'temperature') as temp,
             max(sum / count) filter (where metric = 'humidity') as rh
      from rows where sensor_id = ${dewSensor} and metric in ('temperature', 'humidity')
      -- hour and minute rows cover disjoint times, so a bucket names one of them
      group by sensor_id, layout, bucket
    ),
    dp as (
      select sensor_id,
             243.12 * (ln(rh / 100) + 17.62 * temp / (243.12 + temp))
               / (17.62 - (ln(rh / 100) + 17.62 * temp / (243.12 + temp))) as d
      from dew where temp is not null and rh > 0
    )
    select
      (select coalesce(json_agg(json_build_object('sensor_id', sensor_id, 'metric', metric,
                'n', n, 'sum', s, 'min', lo, 'max', hi, 'minutes', mins)), '[]')
       from (select sensor_id, metric, sum(count) as n, sum(sum) as s, min(min) as lo,
                    max(max) as hi, sum(minutes) as mins
             from rows group by 1, 2) x) as stats,
      (select coalesce(json_agg(json_build_object('sensor_id', sensor_id, 'metric', metric,
                'kind', t.kind, 'v', t.v, 'minutes', t.n)), '[]')
       from (select sensor_id, metric, k1, v1, k2, v2, sum(n1) as n1, sum(n2) as n2
             from counted group by 1, 2, 3, 4, 5, 6) x
       cross join lateral (values (k1, v1, n1), (k2, v2, n2)) as t(kind, v, n)) as thresholds,
      (select json_build_object('sensor_id', min(sensor_id), 'n', count(*), 'min', min(d),
                'avg', avg(d), 'max', max(d))
       from dp) as dew`;
  const parse = <T>(v: unknown): T => (typeof v === "string" ? JSON.parse(v) : v) as T;
  const dew = parse<DewRow | null>(row.dew);
  return {
    stats: parse<StatRow[]>(row.stats).map((r) => ({ ...r, sensor_id: Number(r.sensor_id) })),
    thresholds: parse<ThresholdRow[]>(row.thresholds).map((r) => ({
      ...r,
      sensor_id: Number(r.sensor_id),
      v: Number(r.v),
    })),
    dew: dew && dew.n > 0
      ? {
        sensor_id: Number(dew.sensor_id),
        n: Number(dew.n),
        min: Number(dew.min),
        avg: Number(dew.avg),
        max: Number(dew.max),
      }
      : null,
  };
}
