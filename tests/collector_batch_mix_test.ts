// One batch that holds everything at once: readings, identical repeats of some of them (a device
// sending twice, a redelivery), one reading the database refuses (a CHECK constraint), and a
// database restart in the middle of isolating that reading, after part of the batch was
// committed. Each reading must end stored exactly once, with rollups equal to the raw rows, and
// only the refused one in rejected_messages.
import { equal, ok } from "node:assert/strict";
import { type Db, sqlState } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { startCollector } from "../lib/ingest/mod.ts";
import {
  BASE_S,
  collectorScene,
  connectClient,
  countReadings,
  dbLink,
  publishReadings,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";
import { assertRollupsMatchRaw } from "./fixtures/rollup_check.ts";

Deno.test("a batch with duplicates, a refused record and a database restart stores each reading once and rejects only the refused one", async () => {
  await using db = await withTestDb();
  await db.exec(`alter table scd30_measurements add constraint co2_sane check (co2 < 40000)`);
  await using scene = await collectorScene("mix");
  const { broker, dataDir, id, config } = scene;
  const device = `mix_${id}`;
  await using link = await dbLink(db, dataDir);

  // The collector's database: once it has refused the batch, the first transaction that leaves
  // some of its readings committed (a part of the batch, during the isolation) is followed by a
  // restart of 1 s.
  let refused = false;
  let restarted = false;
  const watched: Db = {
    ...link.db,
    sql: (strings, ...values) => link.db.sql(strings, ...values),
    query: (text, params) => link.db.query(text, params),
    exec: (script) => link.db.exec(script),
    close: () => link.db.close(),
    async transaction(fn, opts) {
      try {
        const result = await link.db.transaction(fn, opts);
        if (refused && !restarted && (await countReadings(db, device)).columnar > 0) {
          restarted = true;
          link.goDown();
          setTimeout(() => link.comeBack(), 1000);
        }
        return result;
      } catch (err) {
        if (sqlState(err) === "23514") refused = true;
        throw err;
      }
    },
  };

  const collector = await startCollector(watched, config, {
    flushIntervalMs: 20,
    retryMinMs: 100,
    retryMaxMs: 400,
    slowWriteMs: 300,
    probeTimeoutMs: 500,
  });
  const pub = await connectClient(broker.url, `pub-mix-${id}`);
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    // Everything arrives while the database is away, so that it is written as one batch.
    link.goDown();
    await publishReadings(pub, { device, from: 0, to: 40 });
    await publishReadings(pub, { device, from: 10, to: 20 }); // identical repeats
    await pub.publishAsync(
      `devices/${device}/sensors/scd30/data`,
      JSON.stringify({
        timestamp: BASE_S + 1000,
        value: { co2: { reading: 50000 }, temperature: { reading: 21 }, humidity: 40 },
      }),
      { qos: 1 },
    );
    await publishReadings(pub, { device, from: 30, to: 35 }); // more repeats, after it
    await waitFor("the journal to hold every message", () => collector.stats().received >= 56);
    link.comeBack();

    await waitFor("the batch to be stored", async () => {
      return (await countReadings(db, device)).columnar >= 40 && collector.stats().rejected >= 1;
    });
    await waitFor("the journal to be empty", () => collector.stats().journalBytes === 0);
    ok(refused, "the database refused the batch");
    ok(restarted, "the database restarted while the refused record was isolated");

    const counts = await countReadings(db, device);
    equal(counts.columnar, 40);
    equal(counts.flexible, 120);
    equal(counts.co2Sum, sumTo(40));
    const rows = await db.sql<{ payload: string; reason: string }>`
      select payload, reason from rejected_messages where topic like ${"%" + id + "%"}`;
    equal(rows.length, 1, JSON.stringify(rows));
    ok(rows[0].reason.startsWith("database refused the message:"), rows[0].reason);
    ok(rows[0].reason.includes("co2_sane"), rows[0].reason);
    ok(rows[0].payload.includes("50000"), rows[0].payload);
    await assertRollupsMatchRaw(db);
    const [{ n }] = await db.sql<{ n: number }>`
      select sum(count)::int as n from rollup_1d r join sensors s using (sensor_id)
      where s.device_id = ${device} and r.layout = 'columnar'`;
    equal(n, 120, "every stored reading counted once in the day rollup");
  } finally {
    await pub.endAsync();
    await collector.stop();
  }
});
