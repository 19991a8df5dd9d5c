import type { Db } from "../db/mod.ts";
import { latestReadings } from "../readings/mod.ts";
import { loadHistory } from "./_history.ts";

/**
 * Sparklines are 24 h in 15-minute buckets: recomputing them more often than every few minutes
 * is waste (the values next to them update every poll).
 */
const TTL_MS = 5 * 60_000;
/** Histories computed at once, so a refresh leaves the database free for other requests. */
const CONCURRENCY = 2;
/** 24 h in 15-minute buckets (97 when the range does not start on a bucket boundary). */
const SPARK_POINTS = 100;

/** sensor_id → metric → { t: bucket starts (unix s), v: averages, b: bucket width (s) } */
export type Sparklines = Record<string, Record<string, { t: number[]; v: number[]; b: number }>>;

/**
 * The 24 h sparkline of every metric of every sensor that has a latest reading, computed with
 * `sensorHistory`. The first request computes them; later ones get the last result at once, and
 * one older than five minutes is recomputed in the background (concurrent requests share one
 * computation). Nothing is computed while nobody asks.
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
    this.#running ??= this.#compute(now).then((data) => {
      this.#value = { at: now.getTime(), data };
      return data;
    }).finally(() => this.#running = undefined);
    if (v) {
      this.#running.catch(() => {}); // the old value serves until a computation succeeds
      return Promise.resolve(v.data);
    }
    return this.#running;
  }

  async #compute(now: Date): Promise<Sparklines> {
    const { readings } = await latestReadings(this.#db, { now });
    const jobs = readings.map((r) => ({ sensorId: r.sensorId, metric: r.metric }));
    const out: Sparklines = {};
    let next = 0;
    const worker = async () => {
      while (next < jobs.length) {
        const job = jobs[next++];
        const h = await loadHistory(this.#db, {
          ...job,
          range: "24h",
          now,
          maxPoints: SPARK_POINTS,
          timeoutMs: this.#timeoutMs,
        });
        (out[job.sensorId] ??= {})[job.metric] = {
          t: h.points.map((p) => Math.floor(p.time.getTime() / 1000)),
          v: h.points.map((p) => p.avg),
          b: h.bucket.seconds,
        };
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    return out;
  }
}
