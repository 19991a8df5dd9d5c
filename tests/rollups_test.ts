import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { Db } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { createBatchWriter, decodeMessage } from "../lib/ingest/mod.ts";
import type { Decoded } from "../lib/ingest/types.ts";
import { sensorHistory, startRetention, trimRawReadings } from "../lib/readings/mod.ts";
import { assertRollupsMatchRaw, assertSameRollups, rollupRows } from "./fixtures/rollup_check.ts";

const enc = new TextEncoder();
const T0 = Date.UTC(2024, 2, 10, 22, 30, 5); // not on a minute, hour or day boundary

/** A message as the broker hands it over, received one second after its timestamp. */
function msg(topic: string, payload: { timestamp: number; value: unknown }): Decoded {
  const receivedAt = payload.timestamp * 1000 + 1000;
  return decodeMessage({ topic, payload: enc.encode(JSON.stringify(payload)), receivedAt });
}

/** `n` rounds of both sensors of `device`, every `stepS` seconds from `fromMs`. */
function readings(device: string, fromMs: number, n: number, stepS: number): Decoded[] {
  const out: Decoded[] = [];
  for (let i = 0; i < n; i++) {
    const timestamp = (fromMs + i * stepS * 1000) / 1000;
    out.push(msg(`devices/${device}/sensors/scd30/data`, {
      timestamp,
      value: {
        co2: { reading: 400 + (i * 37) % 1500 + 0.1 },
        temperature: { reading: 18 + (i % 70) / 10 },
        humidity: { reading: 35 + (i * 7) % 40 },
      },
    }));
    out.push(msg(`devices/${device}/sensors/bmp280/data`, {
      timestamp,
      value: { pressure: { reading: 1000 + (i % 300) / 10 }, temperature: { reading: 20.5 } },
    }));
  }
  return out;
}

async function count(db: Db, sql: string): Promise<number> {
  const { rows: [r] } = await db.query<{ n: number }>(sql);
  return Number(r.n);
}

Deno.test("rollups equal the raw aggregates after ingest, late readings and a replayed batch", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const batch = readings("esp32-01", T0, 400, 10); // 66 minutes across an hour and a day
  await writer.write(batch);
  await assertRollupsMatchRaw(db);
  assertEquals(await count(db, "select sum(count) as n from rollup_1d"), 400 * 5 * 2);

  // Late: readings of the day before, and some inside minutes the rollups already have.
  await writer.write(readings("esp32-01", T0 - 86_400_000, 50, 60));
  await writer.write(readings("esp32-01", T0 + 5_000, 30, 10));
  await assertRollupsMatchRaw(db);

  // The journal replays a batch that was stored (the writer crashed before it knew): nothing
  // may be counted twice, and the new readings mixed into it are.
  const before = await rollupRows(db, "rollup_1m");
  await writer.write(batch);
  assertSameRollups(await rollupRows(db, "rollup_1m"), before);
  await writer.write([...batch.slice(0, 100), ...readings("esp32-01", T0 + 7_000, 3, 10)]);
  await assertRollupsMatchRaw(db);
  assertEquals(
    await count(db, "select sum(count) as n from rollup_1h where layout = 'columnar'"),
    await count(
      db,
      `select (select count(co2) + count(temperature) + count(humidity) from scd30_measurements)
            + (select count(pressure) + count(temperature) + count(humidity)
               from bmp280_measurements) as n`,
    ),
  );
  // The BMP280 never reported humidity: no rollup row says it did.
  assertEquals(
    await count(
      db,
      `select count(*) as n from rollup_1d r join sensors s using (sensor_id)
       where s.sensor_type = 'bmp280' and r.metric = 'humidity'`,
    ),
    0,
  );
});

Deno.test("a new sensor type's table gets rollups from its first readings", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const sgp = (i: number) =>
    msg("devices/esp32-02/sensors/sgp30/data", {
      timestamp: T0 / 1000 + i * 30,
      value: { tvoc: { reading: 100 + i }, eco2: { reading: 500 + 2 * i } },
    });
  await writer.write([0, 1, 2, 3].map(sgp));
  await writer.write([2, 3, 4].map(sgp));
  await assertRollupsMatchRaw(db, { sgp30_measurements: ["tvoc", "eco2"] });
  assertEquals(
    await count(db, "select sum(count) as n from rollup_1d where metric = 'tvoc'"),
    10, // 5 readings in each layout
  );
});

Deno.test("retention removes only old raw readings, keeps the rollups and drops replays of them", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const start = Date.UTC(2024, 2, 1, 0, 0, 0);
  const old = readings("esp32-01", start, 3 * 288, 300); // three days every 5 minutes
  await writer.write(old);
  // A table without rollups is never trimmed: its readings would be lost.
  await db.exec(`
    create table sgp30_measurements (time timestamptz not null, sensor_id integer not null,
      tvoc double precision, primary key (sensor_id, time));
    insert into sgp30_measurements values ('2024-02-01T00:00:00Z', 99, 1);`);
  const rollups = await Promise.all(
    (["rollup_1m", "rollup_1h", "rollup_1d"] as const).map((t) => rollupRows(db, t)),
  );
  const cut = new Date(Date.UTC(2024, 2, 2, 12, 0, 30));
  const keep = (sql: string) => count(db, sql.replace("?", `'${cut.toISOString()}'`));
  const want = {
    scd30: await keep("select count(*) as n from scd30_measurements where time >= ?"),
    bmp280: await keep("select count(*) as n from bmp280_measurements where time >= ?"),
    flexible: await keep("select count(*) as n from measurements where time >= ?"),
  };
  const trimmed = await trimRawReadings(db, { before: cut, batchRows: 100, maxBatches: 10 });
  assert(trimmed.some((t) => t.more), "ten batches of 100 rows cannot remove it all");
  let passes = 1;
  while ((await trimRawReadings(db, { before: cut, batchRows: 100 })).some((t) => t.more)) {
    passes++;
  }
  assert(passes >= 1);
  assertEquals({
    scd30: await count(db, "select count(*) as n from scd30_measurements"),
    bmp280: await count(db, "select count(*) as n from bmp280_measurements"),
    flexible: await count(db, "select count(*) as n from measurements"),
  }, want);
  assertEquals(await count(db, "select count(*) as n from sgp30_measurements"), 1);
  assertEquals(
    await count(
      db,
      `select count(*) as n from scd30_measurements where time < '${cut.toISOString()}'`,
    ),
    0,
  );
  for (const [i, t] of (["rollup_1m", "rollup_1h", "rollup_1d"] as const).entries()) {
    assertSameRollups(await rollupRows(db, t), rollups[i]);
  }

  // The journal replays the old batch: its rows before the horizon are dropped, not counted
  // again; a late reading after the horizon is stored and counted.
  await writer.write(old);
  assertEquals(await count(db, "select count(*) as n from scd30_measurements"), want.scd30);
  assertSameRollups(await rollupRows(db, "rollup_1d"), rollups[2]);
  await writer.write(readings("esp32-01", cut.getTime() + 1000, 1, 10));
  assertEquals(await count(db, "select count(*) as n from scd30_measurements"), want.scd30 + 1);
});

Deno.test("startRetention() trims on its schedule and stops cleanly", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar"] });
  const now = Date.UTC(2024, 2, 20, 0, 0, 0);
  await writer.write(readings("esp32-01", now - 10 * 86_400_000, 10, 86_400));
  const retention = startRetention(db, {
    rawRetentionDays: 3,
    firstDelayMs: 0,
    intervalMs: 60_000,
    pauseMs: 0,
    now: () => now,
  });
  try {
    const result = await retention.runOnce();
    const scd = result.find((t) => t.table === "scd30_measurements");
    assertEquals(scd?.rows, 7); // days −10 … −4 are older than three days
    assertEquals(await count(db, "select count(*) as n from scd30_measurements"), 3);
    assertEquals(await count(db, "select sum(count) as n from rollup_1d where metric = 'co2'"), 10);
  } finally {
    await retention.stop();
  }
});

Deno.test("sensorHistory() reads the coarsest source that fits and matches the raw readings", async () => {
  await using db = await withTestDb();
  await db.exec(`
    insert into devices (device_id, location) values ('d1', 'Office');
    insert into sensors (sensor_id, device_id, sensor_type) values (1, 'd1', 'scd30');
    -- 40 days, one reading every 40 s, off for two days from 2024-01-20T05:17:20
    insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
    select timestamptz '2024-01-01T00:00:00Z' + g * interval '40 s', 1,
           400 + (g * 7919) % 1300 + 0.25, 18 + (g % 50) / 10.0, 30 + (g * 13) % 45
    from generate_series(0, 86399) g
    where not (g between 42800 and 47120);
  `);
  const cases = [
    // [start, end, maxPoints, source]
    ["2024-01-05T10:00:07Z", "2024-01-05T10:20:00Z", 500, "raw"],
    ["2024-01-05T10:00:07Z", "2024-01-06T10:00:07Z", 500, "rollup_1m"],
    ["2024-01-02T03:04:05Z", "2024-02-01T00:00:00Z", 500, "rollup_1h"],
    ["2023-12-20T00:00:00Z", "2024-02-15T13:00:00Z", 60, "rollup_1d"],
  ] as const;
  for (const [s, e, maxPoints, source] of cases) {
    const o = { sensorId: 1, metric: "co2", start: new Date(s), end: new Date(e), maxPoints };
    const fast = await sensorHistory(db, o);
    const raw = await sensorHistory(db, { ...o, rollups: false });
    assertEquals([s, fast.source], [s, source]);
    assertEquals(raw.source, "raw");
    assertEquals(
      fast.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max]),
      raw.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max]),
    );
    for (const [i, p] of fast.points.entries()) {
      assert(Math.abs(p.avg - raw.points[i].avg) < 1e-9, `${s}: ${p.avg} ≠ ${raw.points[i].avg}`);
    }
    assertEquals(fast.gaps.map(String), raw.gaps.map(String));
  }
  // The two silent days are gaps, not points.
  const month = await sensorHistory(db, {
    sensorId: 1,
    metric: "co2",
    start: new Date("2024-01-18T00:00:00Z"),
    end: new Date("2024-01-24T00:00:00Z"),
    maxPoints: 6,
  });
  assertEquals(month.points.map((p) => p.time.toISOString().slice(0, 10)), [
    "2024-01-18",
    "2024-01-19",
    "2024-01-20",
    "2024-01-22",
    "2024-01-23",
  ]);
  assertEquals(month.gaps.map((g) => g.toISOString().slice(0, 10)), ["2024-01-21"]);

  // After retention the same periods give the same answers from the rollups.
  const o = {
    sensorId: 1,
    metric: "co2",
    start: new Date("2024-01-02T03:04:00Z"),
    end: new Date("2024-02-01T00:00:00Z"),
    maxPoints: 500,
  };
  const before = await sensorHistory(db, o);
  await trimRawReadings(db, { before: new Date("2024-01-25T00:00:00Z") });
  const after = await sensorHistory(db, o);
  assertEquals(after.source, "rollup_1h");
  assertEquals(
    after.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max]),
    before.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max]),
  );
});

Deno.test("sensorHistory() reads raw readings instead of a minute rollup that condenses nothing", async () => {
  await using db = await withTestDb();
  // one reading a minute for 3 days, in the columnar table; every 10 s in the flexible one
  await db.exec(`
    insert into devices (device_id) values ('d1');
    insert into sensors (sensor_id, device_id, sensor_type) values (1, 'd1', 'scd30');
    insert into scd30_measurements (time, sensor_id, co2)
    select timestamptz '2024-01-01T00:00:00Z' + g * interval '1 minute', 1, 400 + (g * 7919) % 1300
    from generate_series(0, 3 * 1440 - 1) g;
    insert into sensors (sensor_id, device_id, sensor_type) values (2, 'd1', 'sgp30');
    insert into measurements (time, sensor_id, metric_type, value)
    select timestamptz '2024-01-01T00:00:00Z' + g * interval '10 s', 2, 'tvoc', (g * 13) % 500
    from generate_series(0, 3 * 8640 - 1) g;
  `);
  const cases = [
    // [sensor, metric, start, end, maxPoints, source]
    [1, "co2", "2024-01-02T00:00:17Z", "2024-01-03T00:00:17Z", 500, "raw"], // 5 min buckets
    [1, "co2", "2024-01-01T10:00:17Z", "2024-01-03T22:00:17Z", 100, "rollup_1h"], // 1 h buckets
    [2, "tvoc", "2024-01-02T00:00:17Z", "2024-01-03T00:00:17Z", 500, "rollup_1m"],
  ] as const;
  for (const [sensorId, metric, s, e, maxPoints, source] of cases) {
    const o = { sensorId, metric, start: new Date(s), end: new Date(e), maxPoints };
    const fast = await sensorHistory(db, o);
    const raw = await sensorHistory(db, { ...o, rollups: false });
    assertEquals([metric, s, fast.source], [metric, s, source]);
    assertEquals(
      fast.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max, p.avg]),
      raw.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max, p.avg]),
    );
  }
  // the hour edges of a 1 h answer: raw readings, not the minute rollup
  const edges = await sensorHistory(db, {
    sensorId: 1,
    metric: "co2",
    start: new Date("2024-01-01T10:00:17Z"),
    end: new Date("2024-01-03T22:00:17Z"),
    maxPoints: 100,
  });
  assertEquals(edges.pieces.map((p) => p.source), ["raw", "rollup_1h", "raw"]);
  // once retention removed the raw readings, the minute rollup answers for them, the same numbers
  const o = {
    sensorId: 1,
    metric: "co2",
    start: new Date("2024-01-02T00:00:00Z"),
    end: new Date("2024-01-03T00:00:00Z"),
    maxPoints: 500,
  };
  const before = await sensorHistory(db, o);
  assertEquals(before.pieces.map((p) => p.source), ["raw"]);
  await trimRawReadings(db, { before: new Date("2024-01-02T12:00:30Z") });
  const after = await sensorHistory(db, o); // the cached catalog still has no horizon
  assertEquals(after.pieces.map((p) => [p.source, p.start.toISOString()]), [
    ["rollup_1m", "2024-01-02T00:00:00.000Z"],
    ["raw", "2024-01-02T12:01:00.000Z"],
  ]);
  assertEquals(after.points.length, 288);
  assertEquals(
    after.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max, p.avg]),
    before.points.map((p) => [p.time.toISOString(), p.count, p.min, p.max, p.avg]),
  );
});
