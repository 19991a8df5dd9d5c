import type { Queryable } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { type TrimmedTable, trimRawReadings } from "./trim_raw_readings.ts";

/** Options of `startRetention`. */
export interface RetentionOptions {
  /** Raw readings older than this many days are removed (RAW_RETENTION_DAYS). */
  rawRetentionDays: number;
  /** Time between passes in milliseconds (default one hour). */
  intervalMs?: number;
  /** Delay before the first pass in milliseconds (default one minute, after start-up's work). */
  firstDelayMs?: number;
  /** Rows per delete (default 5000). */
  batchRows?: number;
  /** Most batches per table and pass (default 200, so a pass removes at most 1M rows a table). */
  maxBatches?: number;
  /** Pause between batches in milliseconds (default 20): the embedded database serves one query at a time. */
  pauseMs?: number;
  /** Clock (tests); default `Date.now`. */
  now?: () => number;
}

/** A running retention job. */
export interface Retention {
  /** Runs one pass now (the timer keeps its schedule); resolves with what it removed. */
  runOnce(): Promise<TrimmedTable[]>;
  /** Stops the timer and waits for a running pass to end at its next batch. Idempotent. */
  stop(): Promise<void>;
}

const log = logger("retention");
const DAY_MS = 86_400_000;

/**
 * Removes raw readings older than `rawRetentionDays` every `intervalMs` (see
 * `trimRawReadings`): the rollups keep every minute, hour and day of them. Each pass logs what it
 * removed per table; a failed pass is logged and retried at the next interval. The horizon is
 * rounded down to the minute.
 */
export function startRetention(db: Queryable, opts: RetentionOptions): Retention {
  const now = opts.now ?? Date.now;
  const intervalMs = opts.intervalMs ?? 3_600_000;
  let stopped = false;
  let running: Promise<TrimmedTable[]> | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;

  const pass = async (): Promise<TrimmedTable[]> => {
    const cut = now() - opts.rawRetentionDays * DAY_MS;
    const before = new Date(Math.floor(cut / 60_000) * 60_000);
    const started = performance.now();
    const trimmed = await trimRawReadings(db, {
      before,
      batchRows: opts.batchRows,
      maxBatches: opts.maxBatches,
      pauseMs: opts.pauseMs ?? 20,
      stopping: () => stopped,
    });
    const rows = trimmed.reduce((n, t) => n + t.rows, 0);
    if (rows > 0 || trimmed.some((t) => t.more)) {
      log.info("removed raw readings older than the retention period", {
        before: before.toISOString(),
        days: opts.rawRetentionDays,
        rows,
        tables: Object.fromEntries(trimmed.filter((t) => t.rows > 0).map((t) => [t.table, t.rows])),
        more: trimmed.some((t) => t.more),
        ms: Math.round(performance.now() - started),
      });
    }
    return trimmed;
  };
  const runOnce = () => {
    running ??= pass().finally(() => running = undefined);
    return running;
  };
  const schedule = (ms: number) => {
    if (stopped) return;
    timer = setTimeout(async () => {
      try {
        await runOnce();
      } catch (error) {
        log.warn("retention pass failed; retried at the next interval", {
          error: (error as Error)?.message ?? String(error),
        });
      }
      schedule(intervalMs);
    }, ms);
  };
  schedule(opts.firstDelayMs ?? 60_000);
  log.info("raw readings are kept for a limited time", { days: opts.rawRetentionDays });
  return {
    runOnce,
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running?.catch(() => {});
    },
  };
}
