/** Latency percentiles of a benchmarked call, in milliseconds. */
export interface Timings {
  p50: number;
  p90: number;
  p99: number;
}

/** Options of `timings`. */
export interface TimingsOptions {
  /** Timed calls. */
  runs: number;
  /** Untimed calls first, to warm caches and JIT (default 0). */
  warmup?: number;
}

/** Calls `fn` one after another and returns the p50, p90 and p99 of the timed calls. */
export async function timings(
  fn: () => Promise<unknown>,
  opts: TimingsOptions,
): Promise<Timings> {
  for (let i = 0; i < (opts.warmup ?? 0); i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    const t = performance.now();
    await fn();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(times.length * q))];
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}
