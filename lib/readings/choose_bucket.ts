/** A bucket width for `date_bin`. */
export interface Bucket {
  /** Width in seconds. */
  seconds: number;
  /** Short label: `1s`, `5m`, `1h`, `1d`, `7d` … */
  label: string;
}

/**
 * Where buckets are aligned: a Monday at 00:00 UTC, so minute, hour and day buckets start on
 * round UTC times and 7-day buckets on Mondays.
 */
export const BUCKET_ORIGIN = new Date("2000-01-03T00:00:00Z");

const NICE = [
  1,
  5,
  10,
  30,
  60,
  300,
  600,
  900,
  1800,
  3600,
  7200,
  10800,
  21600,
  43200,
  86400,
  172800,
  604800,
  1209600,
  2592000,
  7776000,
  31536000,
];

/**
 * The smallest round bucket width (1s, 5s, 10s, 30s, 1m, 5m, 10m, 15m, 30m, 1h, 2h, 3h, 6h, 12h,
 * 1d, 2d, 7d, 14d, 30d, 90d, 365d, then doubling) whose buckets, aligned to `BUCKET_ORIGIN`,
 * number at most `maxPoints` over the range from `start` up to, not including, `end`.
 */
export function chooseBucket(opts: { start: Date; end: Date; maxPoints: number }): Bucket {
  const { start, end } = opts;
  const maxPoints = Math.max(1, Math.floor(opts.maxPoints));
  const fits = (seconds: number) => bucketCount(start, end, seconds) <= maxPoints;
  let seconds = NICE.find(fits);
  if (seconds === undefined) {
    seconds = NICE[NICE.length - 1];
    // Bounded: once a bucket is wider than end − origin, everything falls into one bucket.
    while (!fits(seconds)) seconds *= 2;
  }
  return { seconds, label: bucketLabel(seconds) };
}

/** How many aligned buckets of `seconds` the half-open range [`start`, `end`) touches. */
export function bucketCount(start: Date, end: Date, seconds: number): number {
  const w = seconds * 1000;
  const o = BUCKET_ORIGIN.getTime();
  const last = Math.max(start.getTime(), end.getTime() - 1);
  return Math.floor((last - o) / w) - Math.floor((start.getTime() - o) / w) + 1;
}

function bucketLabel(seconds: number): string {
  if (seconds % 86400 === 0) return `${seconds / 86400}d`;
  if (seconds % 3600 === 0) return `${seconds / 3600}h`;
  if (seconds % 60 === 0) return `${seconds / 60}m`;
  return `${seconds}s`;
}
