import { deepEqual, equal, ok } from "node:assert/strict";
import { withTestDb } from "../db/testing.ts";
import { loadSparklines, SparklineCache } from "./_sparklines.ts";

const HOUR_S = 3600;

Deno.test("sparklines: hourly averages of the last 24 h, gaps left out, columnar before flexible", async () => {
  await using db = await withTestDb();
  const now = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000 + 30 * 60_000);
  const hour = (h: number) => new Date(now.getTime() - h * 3_600_000);
  await db.sql`insert into devices (device_id, last_seen) values ('d1', ${now})`;
  await db.sql`
    insert into sensors (sensor_id, device_id, sensor_type)
    values (1, 'd1', 'scd30'), (2, 'd1', 'bmp280')`;
  // co2 in hours 30 h ago (outside), 5 h ago (400 and 600) and 1 h ago (800); nothing between.
  await db.sql`
    insert into scd30_measurements (time, sensor_id, co2)
    values (${hour(30)}, 1, 100), (${hour(5)}, 1, 400), (${new Date(
    hour(5).getTime() + 60_000,
  )}, 1, 600),
           (${hour(1)}, 1, 800)`;
  // The same hour in the flexible table with another value: the columnar one is shown.
  await db.sql`
    insert into measurements (time, sensor_id, metric_type, value)
    values (${hour(1)}, 1, 'co2', 9999), (${hour(2)}, 2, 'pressure', 1001)`;
  const lines = await loadSparklines(db, { now });
  const co2 = lines["1"].co2;
  equal(co2.b, HOUR_S);
  const startOf = (d: Date) => Math.floor(d.getTime() / 3_600_000) * HOUR_S;
  deepEqual(co2.t, [startOf(hour(5)), startOf(hour(1))], "two hours with readings, a gap between");
  deepEqual(co2.v, [500, 800]);
  deepEqual(lines["2"].pressure.v, [1001], "a flexible-only metric is read from its rollup");
});

Deno.test("sparklines: a table without rollups is read through sensorHistory", async () => {
  await using db = await withTestDb();
  const now = new Date();
  await db.exec(`create table probe_measurements (
    time timestamptz not null, sensor_id int not null, level double precision,
    primary key (sensor_id, time))`);
  await db.sql`insert into devices (device_id, last_seen) values ('d1', ${now})`;
  await db.sql`insert into sensors (sensor_id, device_id, sensor_type) values (7, 'd1', 'probe')`;
  await db.sql`
    insert into probe_measurements (time, sensor_id, level)
    select ${now}::timestamptz - g * interval '20 minutes', 7, g from generate_series(1, 9) g`;
  const line = (await loadSparklines(db, { now }))["7"]?.level;
  ok(line, "the sensor has a sparkline");
  equal(line.b, HOUR_S, "in hours, like the others");
  ok(line.t.length >= 3 && line.t.length <= 4, `buckets: ${line.t.length}`);
});

Deno.test("sparklines: computed once, served from the cache, refreshed after a minute", async () => {
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
  ok(line.t.length >= 2 && line.t.length <= 3, `buckets: ${line.t.length}`);
  await db.sql`
    insert into scd30_measurements (time, sensor_id, co2) values (${now}, 1, 2000)`;
  deepEqual(await cache.get(new Date(now.getTime() + 59_000)), first, "cached within a minute");
  const later = new Date(now.getTime() + 61_000);
  deepEqual(await cache.get(later), first, "a stale value serves while the refresh runs");
  let refreshed = first;
  for (let i = 0; i < 100 && refreshed === first; i++) {
    await new Promise((r) => setTimeout(r, 50));
    refreshed = await cache.get(later);
  }
  ok(Math.max(...refreshed["1"].co2.v) > Math.max(...line.v), "then the refreshed one");
});
