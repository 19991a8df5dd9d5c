import { BUCKET_ORIGIN } from "./choose_bucket.ts";

/** Where the numbers of a history come from: raw readings or one of the rollups. */
export type HistorySource = "raw" | "rollup_1m" | "rollup_1h" | "rollup_1d";

/** One part of a period and the source that covers it. */
export interface SourcePiece {
  source: HistorySource;
  /** Start of the part (included). */
  start: Date;
  /** End of the part (excluded). */
  end: Date;
}

/** The rollups, coarsest first, with their bucket width in seconds. */
export const ROLLUPS: readonly { source: HistorySource; seconds: number }[] = [
  { source: "rollup_1d", seconds: 86400 },
  { source: "rollup_1h", seconds: 3600 },
  { source: "rollup_1m", seconds: 60 },
];

/** Options of `planSources`. */
export interface PlanOptions {
  start: Date;
  end: Date;
  /** Width of the buckets the answer has; a rollup is used only when its width divides it. */
  bucketSeconds: number;
  /** Whether rollups exist for the readings (else everything is raw). */
  rollups: boolean;
  /**
   * Raw readings before this time were removed by retention: a raw part before it is served by
   * `rollup_1m` over the whole minutes it touches instead.
   */
  rawFrom?: Date;
  /**
   * Readings per minute of the metric (see `Catalog.layouts`). At `MINUTE_ROLLUP_MIN_RATE` or
   * fewer the minute rollup holds about a row per reading, so raw readings, whose index is the
   * same range scan over no more rows, fill the parts finer than an hour instead (except before
   * `rawFrom`). Default: unknown, the minute rollup is used.
   */
  rawPerMinute?: number;
}

/** Readings per minute up to which raw readings are read instead of the minute rollup. */
export const MINUTE_ROLLUP_MIN_RATE = 1.2;

/**
 * Covers [`start`, `end`) with the coarsest sources that keep every answer bucket exact: the
 * whole days inside the period come from `rollup_1d`, the whole hours left at its edges from
 * `rollup_1h`, the whole minutes left from `rollup_1m` and the rest (less than a minute at each
 * edge) from raw readings. A rollup is used only when its width divides the answer's bucket width
 * (both are aligned to `BUCKET_ORIGIN`), so no rollup bucket straddles two answer buckets.
 * Parts are in time order, contiguous and never overlap.
 */
export function planSources(opts: PlanOptions): SourcePiece[] {
  const sparse = opts.rawPerMinute !== undefined && opts.rawPerMinute <= MINUTE_ROLLUP_MIN_RATE;
  const fits = opts.rollups ? ROLLUPS.filter((l) => opts.bucketSeconds % l.seconds === 0) : [];
  const levels = sparse ? fits.filter((l) => l.source !== "rollup_1m") : fits;
  const out: SourcePiece[] = [];
  const cover = (a: number, b: number, level: number) => {
    if (a >= b) return;
    if (level >= levels.length) {
      out.push({ source: "raw", start: new Date(a), end: new Date(b) });
      return;
    }
    const w = levels[level].seconds * 1000;
    const o = BUCKET_ORIGIN.getTime();
    const from = o + Math.ceil((a - o) / w) * w;
    const to = o + Math.floor((b - o) / w) * w;
    if (from >= to) return cover(a, b, level + 1);
    cover(a, from, level + 1);
    out.push({ source: levels[level].source, start: new Date(from), end: new Date(to) });
    cover(to, b, level + 1);
  };
  cover(opts.start.getTime(), opts.end.getTime(), 0);
  const rawFrom = opts.rawFrom?.getTime();
  const minute = fits.some((l) => l.source === "rollup_1m");
  if (rawFrom === undefined || !minute) return out;
  // Raw parts before the retention horizon: whole minutes from rollup_1m up to the minute after
  // the horizon, raw readings after it. Each raw part lies between a period edge and a minute
  // boundary or coarser, so widening it to the minute overlaps no other part.
  const o = BUCKET_ORIGIN.getTime();
  const floor = (t: number) => o + Math.floor((t - o) / 60000) * 60000;
  const ceil = (t: number) => o + Math.ceil((t - o) / 60000) * 60000;
  return out.flatMap((p): SourcePiece[] => {
    const [a, b] = [p.start.getTime(), p.end.getTime()];
    if (p.source !== "raw" || a >= rawFrom) return [p];
    const cut = Math.min(ceil(rawFrom), ceil(b));
    const head: SourcePiece = {
      source: "rollup_1m",
      start: new Date(floor(a)),
      end: new Date(cut),
    };
    return cut < b ? [head, { source: "raw", start: new Date(cut), end: p.end }] : [head];
  });
}

/** The coarsest source among `pieces` (what an answer says it used). */
export function coarsestSource(pieces: SourcePiece[]): HistorySource {
  for (const { source } of ROLLUPS) if (pieces.some((p) => p.source === source)) return source;
  return "raw";
}
