import { BUCKET_ORIGIN } from "./choose_bucket.ts";
import { ReadingsError } from "./readings_error.ts";

/**
 * `start` and `end` rounded out to whole `widthMs` (aligned to `BUCKET_ORIGIN`), in epoch ms.
 *
 * @throws {ReadingsError} when `start` is not before `end`.
 */
export function roundPeriod(
  start: Date,
  end: Date,
  widthMs: number,
): { start: number; end: number } {
  if (!(start.getTime() < end.getTime())) {
    throw new ReadingsError(
      `The start (${start.toISOString()}) must be before the end (${end.toISOString()})`,
    );
  }
  const o = BUCKET_ORIGIN.getTime();
  return {
    start: o + Math.floor((start.getTime() - o) / widthMs) * widthMs,
    end: o + Math.ceil((end.getTime() - o) / widthMs) * widthMs,
  };
}
