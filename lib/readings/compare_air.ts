import type { Db } from "../db/mod.ts";
import { type AirSummary, airSummary, type AirSummaryOptions } from "./air_summary.ts";

/** One side of a comparison: a place and a period. */
export type CompareSide = AirSummaryOptions;

/** How one metric differs between the two sides (b − a). */
export interface MetricDifference {
  metric: string;
  unit: string | null;
  /** Average of b minus average of a. */
  avg: number;
  min: number;
  max: number;
  /** CO2: minutes above each threshold, b − a; temperature/humidity: minutes outside the band, b − a. */
  minutesOutside?: Record<string, number>;
}

/** Two summaries side by side, and what changed. */
export interface AirComparison {
  a: AirSummary;
  b: AirSummary;
  /** Metrics both sides have. */
  differences: MetricDifference[];
}

/**
 * Compares two places over one period, or one place over two periods (or both): a summary of
 * each (see `airSummary`) and, for every metric both have, the differences b − a of average,
 * minimum, maximum and of the minutes above the CO2 thresholds or outside the comfort bands.
 * Minute counts are compared as they are: give periods of equal length to compare them fairly.
 */
export async function compareAir(db: Db, a: CompareSide, b: CompareSide): Promise<AirComparison> {
  const sa = await airSummary(db, a);
  const sb = await airSummary(db, b);
  const differences: MetricDifference[] = [];
  for (const ma of sa.metrics) {
    const mb = sb.metrics.find((m) => m.metric === ma.metric);
    if (!mb) continue;
    const d: MetricDifference = {
      metric: ma.metric,
      unit: ma.unit ?? mb.unit,
      avg: mb.avg - ma.avg,
      min: mb.min - ma.min,
      max: mb.max - ma.max,
    };
    if (ma.above && mb.above) {
      d.minutesOutside = Object.fromEntries(
        Object.keys(ma.above).map((k) => [`above_${k}`, (mb.above![k] ?? 0) - ma.above![k]]),
      );
    }
    if (ma.band && mb.band) {
      d.minutesOutside = {
        below: mb.band.below - ma.band.below,
        above: mb.band.above - ma.band.above,
      };
    }
    differences.push(d);
  }
  return { a: sa, b: sb, differences };
}
