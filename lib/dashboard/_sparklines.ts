import type { Db, Queryable } from "../db/mod.ts";
import { type Catalog, loadCatalog, type SensorInfo, sensorMetrics } from "../readings/mod.ts";
import { loadHistory } from "./_history.ts";

/**
 * Sparklines change by one hourly bucket an hour: recomputing them more often than every minute
 * is waste (the values next to them update every poll).
 */
const TTL_MS = 60_000;
/** Sparklines are hourly averages: one `rollup_1h` row per bucket. */
const BUCKET_S = 3600;
const DAY_MS = 86_400_000;
/** Hourly buckets in a sparkline at most (25 from the hour 24 h ago to the current one). */
const BUCKETS_MAX = 26;
/** Histories computed at once for sensors without rollups (see `#compute`). */
const CONCURRENCY = 2;
/** Bucket count of a raw-computed sparkline: 24 h in hours, like the rollup ones. */
const SPARK_POINTS = 25;
/**
 * Series read at most (a page shows 250 for 50 devices): devices register themselves, so their
 * number is outside input; past this the further sensors get no sparkline.
 */
const MAX_SERIES = 2000;

/** sensor_id → metric → { t: bucket starts (unix s), v: averages, b: bucket width (s) } */
export type Sparklines = Record<string, Record<string, { t: number[]; v: number[]; b: number }>>;

/** Whether every table the readings of `sensor` can be in keeps rollups (see `rollup_sources`). */
function rolledUp(catalog: Catalog, sensor: SensorInfo): boolean {
  return catalog.rolledUp.has("measurements") &&
    (!catalog.columnar.has(sensor.sensorType) ||
      catalog.rolledUp.has(`${sensor.sensorType}_measurements`));
}

/**
 * The last 24 h of every metric of every sensor as hourly averages, read from `rollup_1h` in one
 * statement (one index range of about 25 rows per sensor, metric and layout, whatever the size
 * of the raw tables); a sensor whose tables keep no rollups gets its hours from `sensorHistory`.
 * Where both layouts hold an hour, the columnar one is used, as `get_sensor_history` does.
 */
export async function loadSparklines(
  db: Db,
  opts: { now: Date; timeoutMs?: number },
): Promise<Sparklines> {
  const { now } = opts;
  const catalog = await loadCatalog(db);
  // From the start of the hour 24 h ago up to now: the last bucket is the hour under way.
  const start = new Date(Math.floor((now.getTime() - DAY_MS) / 3_600_000) * 3_600_000);
  const ids: number[] = [], metrics: string[] = [];
  const raw: { sensorId: number; metric: string }[] = [];
  for (const s of catalog.sensors) {
    const list = sensorMetrics(catalog, s);
    for (const metric of list) {
      if (rolledUp(catalog, s)) {
        ids.push(s.sensorId);
        metrics.push(metric);
      } else raw.push({ sensorId: s.sensorId, metric });
    }
  }
  ids.length = metrics.length = Math.min(ids.length, MAX_SERIES);
  raw.length = Math.min(raw.length, MAX_SERIES - ids.length);
  const out: Sparklines = {};
  if (ids.length > 0) {
    const read = (q: Queryable) =>
      q.sql<{ sensor_id: number; metric: string; layout: string; t: number; v: number }>`
      select k.sensor_id, k.metric, l.layout,
             extract(epoch from r.bucket)::float8 as t, r.sum / r.count as v
      from unnest(${ids}::int[], ${metrics}::text[]) as k(sensor_id, metric)
      cross join (values ('columnar'), ('flexible')) as l(layout)
      cross join lateral (
        -- a LATERAL with a LIMIT is never flattened into a join: one index range per series,
        -- where a join would be planned as a scan of the whole rollup once it is large
        select x.bucket, x.sum, x.count from rollup_1h x
        where x.sensor_id = k.sensor_id and x.metric = k.metric and x.layout = l.layout
          and x.bucket >= ${start} and x.bucket <= ${now} and x.count > 0
        order by x.bucket
        limit ${BUCKETS_MAX}
      ) r
      order by 1, 2, 4, 3`;
    const rows = opts.timeoutMs
      ? await db.transaction(read, { timeoutMs: opts.timeoutMs })
      : await read(db);
    // Ordered by series, hour, then layout: 'columnar' sorts first and wins its hour.
    let last: { t: number[]; v: number[]; b: number } | undefined;
    let lastKey = "";
    for (const r of rows) {
      const key = `${r.sensor_id}/${r.metric}`;
      if (key !== lastKey) {
        last = (out[r.sensor_id] ??= {})[r.metric] = { t: [], v: [], b: BUCKET_S };
        lastKey = key;
      }
      const t = Number(r.t);
      if (last!.t.at(-1) === t) continue;
      last!.t.push(t);
      last!.v.push(round(Number(r.v)));
    }
  }
  let next = 0;
  const worker = async () => {
    while (next < raw.length) {
      const job = raw[next++];
      const h = await loadHistory(db, {
        ...job,
        range: "24h",
        now,
        maxPoints: SPARK_POINTS,
        timeoutMs: opts.timeoutMs,
      });
      if (h.points.length === 0) continue;
      (out[job.sensorId] ??= {})[job.metric] = {
        t: h.points.map((p) => Math.floor(p.time.getTime() / 1000)),
        v: h.points.map((p) => round(p.avg)),
        b: h.bucket.seconds,
      };
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return out;
}

/** Two decimals are plenty for a 36-pixel line and halve the JSON of 250 series. */
function round(v: number): number {
  return Math.round(v * 100) / 100;
}

/**
 * The sparklines of `loadSparklines`, shared by every page: the first request computes them;
 * later ones get the last result at once, and one older than a minute is recomputed in the
 * background (concurrent requests share one computation). Nothing is computed while nobody asks.
 */
export class SparklineCache {
  #db: Db;
  #timeoutMs: number | undefined;
  #value: { at: number; data: Sparklines } | undefined;
  #running: Promise<Sparklines> | undefined;

  constructor(db: Db, opts: { timeoutMs?: number } = {}) {
    this.#db = db;
    this.#timeoutMs = opts.timeoutMs;
  }

  /** The current sparklines (see the class). */
  get(now = new Date()): Promise<Sparklines> {
    const v = this.#value;
    if (v && now.getTime() - v.at < TTL_MS) return Promise.resolve(v.data);
    this.#running ??= loadSparklines(this.#db, { now, timeoutMs: this.#timeoutMs }).then(
      (data) => {
        this.#value = { at: now.getTime(), data };
        return data;
      },
    ).finally(() => this.#running = undefined);
    if (v) {
      this.#running.catch(() => {}); // the old value serves until a computation succeeds
      return Promise.resolve(v.data);
    }
    return this.#running;
  }
}
