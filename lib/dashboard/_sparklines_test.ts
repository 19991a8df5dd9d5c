import { deepEqual, equal, ok } from "node:assert/strict";
import { withTestDb } from "../db/testing.ts";
import { SparklineCache } from "./_sparklines.ts";

Deno.test("sparklines: computed once, served from the cache, refreshed after five minutes", async () => {
  await using db = await withTestDb();
  const now = new Date();
  await db.sql`insert into devices (device_id, last_seen) values ('d1', ${now})`;
  await db.sql`insert into sensors (sensor_id, device_id, sensor_type) values (1, 'd1', 'scd30')`;
  await db.sql`
    insert into scd30_measurements (time, sensor_id, co2)
    select ${now}::timestamptz - g * interval '10 minutes', 1, 400 + g
    from generate_series(1, 12) g`;
  const cache = new SparklineCache(db);
  const first = await cache.get(now);
  const line = first["1"].co2;
  equal(line.b, 900, "15-minute buckets");
  ok(line.t.length >= 7 && line.t.length <= 9, `buckets: ${line.t.length}`);
  await db.sql`
    insert into scd30_measurements (time, sensor_id, co2) values (${now}, 1, 2000)`;
  deepEqual(
    await cache.get(new Date(now.getTime() + 290_000)),
    first,
    "cached within five minutes",
  );
  const later = new Date(now.getTime() + 301_000);
  deepEqual(await cache.get(later), first, "a stale value serves while the refresh runs");
  let refreshed = first;
  for (let i = 0; i < 100 && refreshed === first; i++) {
    await new Promise((r) => setTimeout(r, 50));
    refreshed = await cache.get(later);
  }
  ok(Math.max(...refreshed["1"].co2.v) > Math.max(...line.v), "then the refreshed one");
});
