import type { Db } from "../db/mod.ts";
import { within } from "./_within.ts";
import { roundPeriod } from "./_period.ts";
import { hasRollups, type SensorInfo, sensorMetrics } from "./_catalog.ts";
import { cachedCatalog } from "./_cached_catalog.ts";
import { type PlaceFilter, placeSensors } from "./_room_sensors.ts";

/**
 * Largest plausible change of a minute's average from the minute before, and the physically
 * plausible range, per metric (README "Answers without SQL").
 */
export const QUALITY_LIMITS: Record<string, { jump: number; low: number; high: number }> = {
  co2: { jump: 500, low: 300, high: 10000 },
  temperature: { jump: 2, low: -40, high: 85 },
  humidity: { jump: 15, low: 0, high: 100 },
  pressure: { jump: 3, low: 800, high: 1100 },
};

/** Options of `dataQuality`. */
export interface DataQualityOptions extends PlaceFilter {
  start: Date;
  end: Date;
  /** A stretch without readings at least this long is a gap (default 10 minutes). */
  gapMinutes?: number;
  /** The same value in every reading for at least this many whole hours is stuck (default 2). */
  stuckHours?: number;
  /** Now, for clocks running ahead (tests); default the current time. */
  now?: Date;
  /** Most findings of each kind (default 100). */
  limit?: number;
  /** Cancel the statement after this long, rejecting with `QueryTimeout`; default no limit. */
  timeoutMs?: number;
}

/** A stretch without readings. */
export interface Gap {
  sensorId: number;
  /** First minute without a reading. */
  from: Date;
  /** First minute with a reading again (or the period's end). */
  to: Date;
  minutes: number;
}

/** A value that did not change for hours. */
export interface Stuck {
  sensorId: number;
  metric: string;
  value: number;
  from: Date;
  to: Date;
  hours: number;
}

/** A change from one minute to the next larger than the metric allows. */
export interface Jump {
  sensorId: number;
  metric: string;
  /** The minute the value jumped in. */
  time: Date;
  from: number;
  to: number;
}

/** Readings outside the physically plausible range, per hour. */
export interface Implausible {
  sensorId: number;
  metric: string;
  hour: Date;
  min: number;
  max: number;
}

/** A device whose timestamps cannot be right. */
export interface ClockFinding {
  deviceId: string;
  sensorId: number;
  /** Newest stored reading time. */
  newest: Date;
  /** Seconds its newest reading is ahead of now. */
  aheadS: number;
}

/** What `dataQuality` found. */
export interface DataQuality {
  start: Date;
  end: Date;
  sensors: SensorInfo[];
  gapMinutes: number;
  stuckHours: number;
  gaps: Gap[];
  stuck: Stuck[];
  jumps: Jump[];
  implausible: Implausible[];
  clocks: ClockFinding[];
  /** Unit of each metric of each sensor, keyed `sensor_id/metric` (from the `metrics` table). */
  units: Map<string, string | null>;
}

const MINUTE = 60_000;

/**
 * Data-quality findings for the sensors of a place (or every sensor) over a period, from the
 * rollups: gaps (no reading for `gapMinutes` or more; only hours with missing minutes are read
 * minute by minute), stuck values (min = max in consecutive whole hours with the same value),
 * implausible jumps (a minute's average differing from the minute before by more than
 * `QUALITY_LIMITS[metric].jump`; only hour pairs whose range allows one are read minute by
 * minute), readings outside the plausible range, and devices whose newest reading lies in the
 * future (a clock running ahead; one more than 5 minutes ahead is replaced by the receive time at
 * ingest and so cannot be seen here).
 */
export async function dataQuality(db: Db, opts: DataQualityOptions): Promise<DataQuality> {
  const { start, end } = roundPeriod(opts.start, opts.end, MINUTE);
  const gapMinutes = Math.max(2, Math.floor(opts.gapMinutes ?? 10));
  const stuckHours = Math.max(1, Math.floor(opts.stuckHours ?? 2));
  const limit = Math.max(1, Math.min(1000, Math.floor(opts.limit ?? 100)));
  // every sensor: from a fresh catalog, as no miss would tell that a cached one lacks a new one
  const { catalog, sensors } = opts.location?.trim() || opts.device?.trim()
    ? await placeSensors(db, opts)
    : await cachedCatalog(db, { fresh: true }).then((c) => ({
      catalog: c,
      sensors: c.sensors.filter((s) => hasRollups(c, s.sensorType)),
    }));
  const pairs = sensors.flatMap((s) => sensorMetrics(catalog, s).map((m) => [s.sensorId, m]));
  const limits = Object.entries(QUALITY_LIMITS);
  const [row] = await within(db, opts.timeoutMs, (q) =>
    q.sql<
      { gaps: unknown; stuck: unknown; jumps: unknown; implausible: unknown; clocks: unknown }
    >`
    with sel as materialized (
      select s.sensor_id, s.metric,
             coalesce((select 'columnar' from rollup_1h r
                       where r.sensor_id = s.sensor_id and r.metric = s.metric
                         and r.layout = 'columnar' and r.bucket >= ${new Date(start - 3_600_000)}
                         and r.bucket < ${new Date(end)} limit 1), 'flexible') as layout
      from unnest(${pairs.map((p) => p[0])}::int[], ${pairs.map((p) => p[1])}::text[])
        as s(sensor_id, metric)
    ),
    lim(metric, jump, low, high) as (
      select * from unnest(${limits.map(([m]) => m)}::text[],
                           ${limits.map(([, l]) => l.jump)}::float8[],
                           ${limits.map(([, l]) => l.low)}::float8[],
                           ${limits.map(([, l]) => l.high)}::float8[])
    ),
    h as materialized (
      select r.* from sel join rollup_1h r using (sensor_id, metric, layout)
      where r.bucket >= ${new Date(start - 3_600_000)} and r.bucket < ${new Date(end)}
    ),
    -- Gaps: one metric per sensor (the first); a full hour stands for its first and last minute.
    gm as (select distinct on (sensor_id) sensor_id, metric from sel order by sensor_id, metric),
    -- Stretches with readings: a whole hour with every minute is one, else each minute is.
    hours as (
      select h.sensor_id, h.metric, h.layout, h.bucket,
             h.minutes = 60 and h.bucket >= ${new Date(start)}
               and h.bucket + interval '1 hour' <= ${new Date(end)} as whole
      from h join gm using (sensor_id, metric)
    ),
    spans as (
      select sensor_id, bucket as a, bucket + interval '59 minutes' as b from hours where whole
      union all
      select m.sensor_id, m.bucket, m.bucket from hours p
      join rollup_1m m on m.sensor_id = p.sensor_id and m.metric = p.metric
        and m.layout = p.layout and m.bucket >= p.bucket and m.bucket < p.bucket + interval '1 hour'
      where not p.whole and m.bucket >= ${new Date(start)} and m.bucket < ${new Date(end)}
      union all
      -- the period's edges, as if a reading were there, so gaps at the start and end show
      select sensor_id, ${new Date(start - MINUTE)}::timestamptz, ${new Date(
      start - MINUTE,
    )}::timestamptz from gm
      union all
      select sensor_id, ${new Date(end)}::timestamptz, ${new Date(end)}::timestamptz from gm
    ),
    steps as (
      select sensor_id, lag(b) over (partition by sensor_id order by a) as prev, a as t from spans
    ),
    gaps as (
      select sensor_id, prev + interval '1 minute' as "from", t as "to",
             extract(epoch from t - prev)::int / 60 - 1 as minutes
      from steps where t - prev > ${`${gapMinutes} minutes`}::interval
      order by sensor_id, prev limit ${limit}
    ),
    -- Stuck: islands of consecutive hours with min = max and the same value.
    flat as (
      select sensor_id, metric, min as v, bucket,
             bucket - (row_number() over (partition by sensor_id, metric, min order by bucket))
               * interval '1 hour' as island
      from h where min = max and count > 1
        and bucket >= ${new Date(start)} and bucket < ${new Date(end)}
    ),
    stuck as (
      select sensor_id, metric, v, min(bucket) as "from", max(bucket) + interval '1 hour' as "to",
             count(*) as hours
      from flat group by sensor_id, metric, v, island having count(*) >= ${stuckHours}
      order by sensor_id, metric, 5 limit ${limit}
    ),
    -- Jumps: hours whose readings, with the hour before, span more than the limit.
    hp as (
      select h.*, lim.jump,
             lag(h.min) over w as pmin, lag(h.max) over w as pmax, lag(h.bucket) over w as pb
      from h join lim using (metric)
      window w as (partition by h.sensor_id, h.metric order by h.bucket)
    ),
    cand as (
      select distinct sensor_id, metric, layout, b as bucket, jump from hp
      cross join lateral (values (hp.bucket), (case when hp.pb = hp.bucket - interval '1 hour'
                                                  then hp.pb end)) as x(b)
      where x.b is not null and (hp.max - hp.min > hp.jump
         or (hp.pb = hp.bucket - interval '1 hour'
             and greatest(hp.max, hp.pmax) - least(hp.min, hp.pmin) > hp.jump))
    ),
    cm as (
      select c.sensor_id, c.metric, c.jump, m.bucket, m.sum / m.count as v,
             lag(m.bucket) over w as pb, lag(m.sum / m.count) over w as pv
      from cand c join rollup_1m m on m.sensor_id = c.sensor_id and m.metric = c.metric
        and m.layout = c.layout and m.bucket >= c.bucket
        and m.bucket < c.bucket + interval '1 hour'
      window w as (partition by c.sensor_id, c.metric order by m.bucket)
    ),
    jumps as (
      select sensor_id, metric, bucket as time, pv as "from", v as "to" from cm
      where pb >= bucket - interval '2 minutes' and abs(v - pv) > jump
        and bucket >= ${new Date(start)} and bucket < ${new Date(end)}
      order by sensor_id, metric, bucket limit ${limit}
    ),
    implausible as (
      select h.sensor_id, h.metric, h.bucket as hour, h.min, h.max from h join lim using (metric)
      where (h.min < lim.low or h.max > lim.high)
        and h.bucket >= ${new Date(start)} and h.bucket < ${new Date(end)}
      order by 1, 2, 3 limit ${limit}
    ),
    clocks as (
      select s.device_id, s.sensor_id, s.last_seen as newest,
             extract(epoch from s.last_seen - ${opts.now ?? new Date()}::timestamptz) as ahead_s
      from sensors s where s.sensor_id = any(${sensors.map((s) => s.sensorId)}::int[])
        and s.last_seen > ${opts.now ?? new Date()}::timestamptz + interval '1 minute'
      order by 1, 2 limit ${limit}
    )
    select (select coalesce(json_agg(gaps), '[]') from gaps) as gaps,
           (select coalesce(json_agg(stuck), '[]') from stuck) as stuck,
           (select coalesce(json_agg(jumps), '[]') from jumps) as jumps,
           (select coalesce(json_agg(implausible), '[]') from implausible) as implausible,
           (select coalesce(json_agg(clocks), '[]') from clocks) as clocks`);
  const list = <T>(v: unknown) => (typeof v === "string" ? JSON.parse(v) : v) as T[];
  const bySensor = new Map(sensors.map((s) => [s.sensorId, s.sensorType]));
  return {
    start: new Date(start),
    end: new Date(end),
    sensors,
    units: new Map(
      pairs.map((
        [id, m],
      ) => [`${id}/${m}`, catalog.units.get(`${bySensor.get(+id)}/${m}`) ?? null]),
    ),
    gapMinutes,
    stuckHours,
    gaps: list<{ sensor_id: number; from: string; to: string; minutes: number }>(row.gaps)
      .map((r) => ({
        sensorId: Number(r.sensor_id),
        from: new Date(r.from),
        to: new Date(r.to),
        minutes: Number(r.minutes),
      })),
    stuck: list<
      { sensor_id: number; metric: string; v: number; from: string; to: string; hours: number }
    >(row.stuck).map((r) => ({
      sensorId: Number(r.sensor_id),
      metric: r.metric,
      value: Number(r.v),
      from: new Date(r.from),
      to: new Date(r.to),
      hours: Number(r.hours),
    })),
    jumps: list<{ sensor_id: number; metric: string; time: string; from: number; to: number }>(
      row.jumps,
    ).map((r) => ({
      sensorId: Number(r.sensor_id),
      metric: r.metric,
      time: new Date(r.time),
      from: Number(r.from),
      to: Number(r.to),
    })),
    implausible: list<
      { sensor_id: number; metric: string; hour: string; min: number; max: number }
    >(row.implausible).map((r) => ({
      sensorId: Number(r.sensor_id),
      metric: r.metric,
      hour: new Date(r.hour),
      min: Number(r.min),
      max: Number(r.max),
    })),
    clocks: list<{ device_id: string; sensor_id: number; newest: string; ahead_s: number }>(
      row.clocks,
    ).map((r) => ({
      deviceId: r.device_id,
      sensorId: Number(r.sensor_id),
      newest: new Date(r.newest),
      aheadS: Math.round(Number(r.ahead_s)),
    })),
  };
}
