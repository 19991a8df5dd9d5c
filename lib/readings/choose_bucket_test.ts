import { deepEqual, ok } from "node:assert/strict";
import { bucketCount, chooseBucket } from "./choose_bucket.ts";

const at = (iso: string) => new Date(iso);

Deno.test("chooseBucket() picks the smallest round width that keeps rows within max_points", () => {
  const end = at("2024-03-10T12:00:00Z");
  const day = (n: number) => new Date(end.getTime() - n * 86_400_000);
  deepEqual(chooseBucket({ start: day(1), end, maxPoints: 500 }), { seconds: 300, label: "5m" });
  deepEqual(chooseBucket({ start: day(7), end, maxPoints: 500 }), { seconds: 1800, label: "30m" });
  deepEqual(chooseBucket({ start: day(7), end, maxPoints: 5000 }), { seconds: 300, label: "5m" });
  deepEqual(chooseBucket({ start: day(365), end, maxPoints: 500 }), {
    seconds: 86400,
    label: "1d",
  });
  deepEqual(chooseBucket({ start: at("2024-03-10T11:59:00Z"), end, maxPoints: 500 }), {
    seconds: 1,
    label: "1s",
  });
});

Deno.test("chooseBucket() never yields more buckets than max_points, for any range", () => {
  const end = at("2024-03-10T12:34:56.789Z");
  for (const rangeS of [1, 59, 61, 3599, 86_401, 7 * 86_400 + 13, 400 * 86_400, 3e9]) {
    for (const maxPoints of [1, 2, 3, 10, 499, 500, 5000]) {
      const start = new Date(end.getTime() - rangeS * 1000);
      const b = chooseBucket({ start, end, maxPoints });
      const n = bucketCount(start, end, b.seconds);
      ok(n <= maxPoints, `${rangeS}s / ${maxPoints} points → ${b.label} gives ${n} buckets`);
    }
  }
});
