// The shared chart code is browser JavaScript; its pure parts run under Deno too.
import { deepEqual, equal } from "node:assert/strict";
import "./assets/chart.js";

type Charts = {
  alignBuckets(
    points: { time: string; avg: number; min: number; max: number }[],
    start: string,
    end: string,
    bucketSeconds: number,
  ): (number | null)[][];
  co2Band(ppm: number): { key: string };
  formatAge(s: number | null): string;
};
const C = (globalThis as unknown as { AmbientCharts: Charts }).AmbientCharts;

Deno.test("alignBuckets gives one slot per bucket and leaves missing buckets null", () => {
  const p = (time: string, v: number) => ({ time, avg: v, min: v - 1, max: v + 1 });
  const [t, avg, min, max] = C.alignBuckets(
    [p("2024-01-01T00:00:00Z", 1), p("2024-01-01T00:10:00Z", 3)],
    "2024-01-01T00:02:00Z",
    "2024-01-01T00:15:00Z",
    300,
  );
  // Buckets start on the server's origin: 00:00, 00:05, 00:10 (the one holding 00:15 is excluded).
  deepEqual(t, [0, 300, 600].map((s) => Date.UTC(2024, 0, 1) / 1000 + s));
  deepEqual(avg, [1, null, 3], "the missing bucket is a gap, not interpolated");
  deepEqual(min, [0, null, 2]);
  deepEqual(max, [2, null, 4]);
});

Deno.test("CO2 bands: below 800 good, 800–1000, 1000–1400, above 1400", () => {
  deepEqual([799, 800, 999, 1000, 1399, 1400, 5000].map((v) => C.co2Band(v).key), [
    "good",
    "fair",
    "fair",
    "poor",
    "poor",
    "bad",
    "bad",
  ]);
  equal(C.formatAge(90), "2 min ago");
  equal(C.formatAge(null), "never");
});
