// Abuse of the collector's limits: a sensor-type flood by one device, the operator reset, and a
// second reading with the same timestamp and another value.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Db } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { createBatchWriter, type Decoded, decodeMessage } from "../lib/ingest/mod.ts";

const enc = new TextEncoder();
const T0 = 1_717_243_200; // 2024-06-01 12:00:00 UTC

function reading(device: string, type: string, metrics: Record<string, number>, ts = T0): Decoded {
  const value = Object.fromEntries(Object.entries(metrics).map(([m, v]) => [m, { reading: v }]));
  return decodeMessage({
    topic: `devices/${device}/sensors/${type}/data`,
    payload: enc.encode(JSON.stringify({ timestamp: ts, value })),
    receivedAt: T0 * 1000,
  });
}

async function reasons(db: Db, like: string): Promise<string[]> {
  const rows = await db.sql<{ reason: string }>`
    select reason from rejected_messages where reason like ${like} order by id`;
  return rows.map((r) => r.reason);
}

Deno.test("a flood of junk sensor types from one device does not lock out another device's new type", async () => {
  await using db = await withTestDb();
  // The real limits: 100 types in all, 10 per device.
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const flood: Decoded[] = [];
  for (let i = 0; i < 100; i++) flood.push(reading("junk", `junk_${i}`, { v: i }));
  await writer.write(flood);
  const [{ n }] = await db.sql<{ n: number }>`
    select count(*)::int as n from sensor_types where created_by = 'junk'`;
  equal(n, 10);
  const refused = await reasons(db, "%junk has introduced 10 sensor types already%");
  equal(refused.length, 90);
  // A real new sensor on another device is stored.
  await writer.write([reading("office", "sgp40", { voc: 120 })]);
  const rows = await db.sql<{ voc: number }>`select voc from sgp40_measurements`;
  deepEqual(rows.map((r) => r.voc), [120]);
  const [{ by }] = await db.sql<{ by: string }>`
    select created_by as by from sensor_types where sensor_type = 'sgp40'`;
  equal(by, "office");
  // The junk device may still write to the types it has, and to types others introduced.
  await writer.write([
    reading("junk", "sgp40", { voc: 1 }),
    reading("junk", "junk_1", { v: 2 }, T0 + 1),
  ]);
  const [{ c }] = await db.sql<{ c: number }>`select count(*)::int as c from sgp40_measurements`;
  equal(c, 2);
});

Deno.test("when the type limit is reached, drop_sensor_type() makes room without a restart", async () => {
  await using db = await withTestDb();
  // scd30 and bmp280 come with the schema: room for one more.
  const writer = createBatchWriter(db, {
    layouts: ["columnar", "flexible"],
    maxSensorTypes: 3,
    retryRefusedMs: 0,
  });
  await writer.write([reading("a", "junk_a", { v: 1 })]);
  await writer.write([reading("b", "sgp40", { voc: 100 })]);
  const refused = await reasons(db, 'sensor type "sgp40" refused: the database already has 3%');
  equal(refused.length, 1);
  match(refused[0], /drop_sensor_type/);
  // The operator removes the junk type; the next reading of the new type is stored.
  await db.exec("select drop_sensor_type('junk_a')");
  await writer.write([reading("b", "sgp40", { voc: 101 }, T0 + 1)]);
  const rows = await db.sql<{ voc: number }>`select voc from sgp40_measurements`;
  deepEqual(rows.map((r) => r.voc), [101]);
  const [{ gone }] = await db.sql<{ gone: boolean }>`
    select to_regclass('junk_a_measurements') is null as gone`;
  ok(gone);
});

Deno.test("a conflicting duplicate reading is recorded, an identical one stays silent", async () => {
  const cases: ("columnar" | "flexible")[][] = [["columnar", "flexible"], ["flexible"], [
    "columnar",
  ]];
  for (const layouts of cases) {
    await using db = await withTestDb();
    const writer = createBatchWriter(db, { layouts: [...layouts] });
    await writer.write([reading("d1", "scd30", { co2: 600, temperature: 21.5 })]);
    // Redelivery of the same message, and the same reading twice in one batch: nothing recorded.
    await writer.write([
      reading("d1", "scd30", { co2: 600, temperature: 21.5 }),
      reading("d1", "scd30", { co2: 600, temperature: 21.5 }),
    ]);
    deepEqual(await reasons(db, "conflicting duplicate%"), [], layouts.join());
    // Another value for a stored sensor and time.
    await writer.write([reading("d1", "scd30", { co2: 650, temperature: 21.5 })]);
    // Two values for one time within a batch.
    await writer.write([
      reading("d1", "scd30", { co2: 700 }, T0 + 60),
      reading("d1", "scd30", { co2: 710 }, T0 + 60),
    ]);
    const found = await reasons(db, "conflicting duplicate%");
    equal(found.length, 2, `${layouts}: ${found.join(" | ")}`);
    match(
      found[0],
      /conflicting duplicate: sensor \d+ already has a reading at 2024-06-01T12:00:00\.000Z \(co2: stored 600, received 650\); the stored value is kept/,
    );
    match(found[1], /co2: stored 700, received 710/);
    // The stored values are the first ones.
    const stored = layouts.includes("columnar")
      ? await db.sql<{ co2: number }>`select co2 from scd30_measurements order by time`
      : await db.sql<{ co2: number }>`
          select value as co2 from measurements where metric_type = 'co2' order by time`;
    deepEqual(stored.map((r) => r.co2), [600, 700]);
    // Replaying the conflicting batch adds no second record.
    await writer.write([reading("d1", "scd30", { co2: 650, temperature: 21.5 })]);
    equal((await reasons(db, "conflicting duplicate%")).length, 2);
  }
});
