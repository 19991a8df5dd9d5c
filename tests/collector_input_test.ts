// Bad input never stops the collector: garbage lands in rejected_messages with a reason while
// valid readings around it are stored. Real broker (MQTT_URL or embedded) and database.
import { equal, ok } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import {
  type BatchWriter,
  createBatchWriter,
  type Decoded,
  startCollector,
} from "../lib/ingest/mod.ts";
import {
  BASE_S,
  collectorScene,
  connectClient,
  countReadings,
  publishReadings,
  reading,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";

/** A message over the 64 KiB payload cap. */
const oversized = JSON.stringify({ value: { co2: 1 }, pad: "x".repeat(70 * 1024) });
const embeddedBroker = !Deno.env.get("MQTT_URL");

Deno.test("a stream mixing garbage and valid messages stores all valid readings, rejects all garbage with a reason, and keeps running", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("input");
  const { broker, id, config } = scene;
  const device = `mix_${id}`;
  const collector = await startCollector(
    db,
    config,
    { flushIntervalMs: 20 },
  );
  const pub = await connectClient(broker.url, `pub-input-${id}`);
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    const data = `devices/${device}/sensors/scd30/data`;
    // Every bad message carries the test's suffix in its topic, to find its rejection.
    const garbage: [string, string | Uint8Array][] = [
      [data, "{not json"],
      [data, '{"timestamp":1700000000,"value":{"co2":NaN}}'],
      [data, '{"value":{"co2":1e999}}'],
      [data, '{"value":{"co2":{"reading":"high"}}}'],
      [data, "[1,2,3]"],
      ...(embeddedBroker ? [] : [[data, oversized] as [string, string]]),
      [data, new Uint8Array([0xff, 0xfe, 0x00, 0x41])],
      [`devices/${device}';drop table devices;--/sensors/scd30/data`, reading(1)],
      [`devices/${device}/sensors/scd30;drop/data`, reading(1)],
      [data, JSON.stringify({ value: { 'co2"; drop table sensors;--': 1 } })],
    ];
    const valid = 40;
    let sent = 0;
    for (let i = 0; i < valid; i++) {
      await pub.publishAsync(data, reading(i), { qos: 1 });
      const bad = garbage[i % garbage.length];
      if (sent < garbage.length && i % 3 === 1) {
        await pub.publishAsync(bad[0], typeof bad[1] === "string" ? bad[1] : Buffer.from(bad[1]), {
          qos: 1,
        });
        sent++;
      }
    }
    for (; sent < garbage.length; sent++) {
      const [topic, payload] = garbage[sent];
      await pub.publishAsync(topic, typeof payload === "string" ? payload : Buffer.from(payload), {
        qos: 1,
      });
    }
    if (embeddedBroker) {
      // The embedded broker refuses a packet over its 64 KiB payload cap at the door: it closes
      // that publisher's connection, and the collector never sees the message.
      const big = await connectClient(broker.url, `pub-big-${id}`);
      let closed = false;
      big.once("close", () => closed = true);
      big.publish(data, oversized, { qos: 1 });
      await waitFor("the broker closing the oversized publisher", () => closed, {
        timeoutMs: 15_000,
      });
      await big.endAsync(true);
    }
    // A reading with one bad metric keeps the good one; a pre-2020 clock gets the receive time.
    await pub.publishAsync(
      data,
      JSON.stringify({ timestamp: BASE_S + valid, value: { co2: valid, "bad metric!": 1 } }),
      { qos: 1 },
    );
    await pub.publishAsync(
      `devices/${device}/sensors/bmp280/data`,
      JSON.stringify({ timestamp: 86400, value: { pressure: 1013.2 } }),
      { qos: 1 },
    );

    await waitFor("the valid readings", async () => {
      return (await countReadings(db, device)).columnar >= valid + 1;
    });
    const rejectedRows = () =>
      db.sql<{ topic: string; reason: string }>`
        select topic, reason from rejected_messages where topic like ${"%" + id + "%"}`;
    await waitFor(
      "the rejections",
      async () => (await rejectedRows()).length >= garbage.length + 1,
    );

    const counts = await countReadings(db, device);
    equal(counts.columnar, valid + 1);
    equal(counts.co2Sum, (valid * (valid + 1)) / 2);
    const rejected = await rejectedRows();
    equal(rejected.length, garbage.length + 1);
    for (const r of rejected) ok(r.reason.trim().length > 5, `no reason for ${r.topic}`);
    const [bmp] = await db.sql<{ age_s: number }>`
      select extract(epoch from now() - b.time)::float8 as age_s
      from bmp280_measurements b join sensors s using (sensor_id) where s.device_id = ${device}`;
    ok(bmp && Math.abs(bmp.age_s) < 600, "the implausible timestamp was not replaced");
    const tables = await db
      .sql`select 1 from information_schema.tables where table_name = 'devices'`;
    equal(tables.length, 1, "the devices table is gone");

    const stats = collector.stats();
    ok(stats.rejected >= garbage.length + 1, `stats.rejected = ${stats.rejected}`);
    ok(stats.timestampsReplaced >= 1);
    ok(stats.received >= valid + garbage.length + 2);

    // Still running: the next reading is stored as usual.
    await pub.publishAsync(data, reading(valid + 1), { qos: 1 });
    await waitFor("a reading after the garbage", async () => {
      return (await countReadings(db, device)).columnar === valid + 2;
    });
    equal(collector.stats().journalBytes, 0);
  } finally {
    await pub.endAsync();
    await collector.stop();
  }
});

Deno.test("a record the database refuses is isolated into rejected_messages and the rest of its batch is stored", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("poison");
  const { broker, id, config } = scene;
  const device = `poison_${id}`;
  // The real writer, except that any batch holding co2 = 13 fails as a data error would.
  const real = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const isPoison = (d: Decoded) => d.kind === "reading" && d.metrics.co2 === 13;
  const writer: BatchWriter = {
    write: (batch) =>
      batch.some(isPoison)
        ? Promise.reject(new Error("value out of range for type double precision"))
        : real.write(batch),
  };
  const collector = await startCollector(
    db,
    config,
    { flushIntervalMs: 200, writer },
  );
  const pub = await connectClient(broker.url, `pub-poison-${id}`);
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    await publishReadings(pub, { device, from: 0, to: 30, chunk: 30 });
    await waitFor("the other readings", async () => {
      return (await countReadings(db, device)).columnar >= 29;
    });
    const rows = await db.sql<{ reason: string }>`
      select reason from rejected_messages where topic like ${"%" + id + "%"}`;
    equal(rows.length, 1);
    ok(rows[0].reason.includes("value out of range"), rows[0].reason);
    const counts = await countReadings(db, device);
    equal(counts.columnar, 29);
    equal(counts.co2Sum, sumTo(30) - 13);
    ok(collector.stats().rejected >= 1);

    await publishReadings(pub, { device, from: 30, to: 31 });
    await waitFor("the next reading", async () => {
      return (await countReadings(db, device)).columnar === 30;
    });
  } finally {
    await pub.endAsync();
    await collector.stop();
  }
});

Deno.test("a backlog of readings without timestamps, delivered in one burst after a restart, is stored in full", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("burst");
  const { broker, id, config } = scene;
  const device = `burst_${id}`;
  let collector = await startCollector(db, config, { flushIntervalMs: 20 });
  const pub = await connectClient(broker.url, `pub-burst-${id}`);
  const n = 300;
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    await collector.stop();
    // The broker queues these for the stopped collector's session and delivers them at once.
    const topic = `devices/${device}/sensors/scd30/data`;
    await Promise.all(
      Array.from(
        { length: n },
        (_, i) => pub.publishAsync(topic, JSON.stringify({ value: { co2: i } }), { qos: 1 }),
      ),
    );
    collector = await startCollector(db, config, { flushIntervalMs: 20 });
    await waitFor("the backlog", () => {
      const s = collector.stats();
      return s.received >= n && s.journalBytes === 0;
    });
    const counts = await countReadings(db, device);
    equal(counts.columnar, n);
    equal(counts.co2Sum, sumTo(n));
  } finally {
    await pub.endAsync();
    await collector.stop();
  }
});

Deno.test("retained capabilities and status sent again on each subscription are stored once and are not activity", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("retained");
  const { broker, id, config } = scene;
  const device = `retained_${id}`;
  const pub = await connectClient(broker.url, `pub-retained-${id}`);
  const topics = [`devices/${device}/capabilities`, `devices/${device}/status`];
  let collector: Awaited<ReturnType<typeof startCollector>> | undefined;
  try {
    await pub.publishAsync(topics[0], JSON.stringify({ device_name: "Hall", sensors: ["scd30"] }), {
      qos: 1,
      retain: true,
    });
    await pub.publishAsync(topics[1], "offline", { qos: 1, retain: true });
    const events = async () => {
      const [r] = await db.sql<{ n: number }>`
        select count(*)::int as n from device_events where device_id = ${device}`;
      return r.n;
    };
    const lastSeen = async () => {
      const [r] = await db.sql<{ last_seen: Date | null; status: string }>`
        select last_seen, status from devices where device_id = ${device}`;
      return r;
    };
    const seenTimes: (number | undefined)[] = [];
    for (let run = 0; run < 3; run++) {
      collector = await startCollector(db, config, { flushIntervalMs: 20 });
      await waitFor("the retained messages", () => {
        const s = collector!.stats();
        return s.received >= 2 && s.journalBytes === 0;
      });
      await collector.stop();
      collector = undefined;
      equal(await events(), 2, `run ${run}`);
      const seen = await lastSeen();
      equal(seen.status, "offline");
      seenTimes.push(seen.last_seen?.getTime());
    }
    equal(new Set(seenTimes).size, 1, "a retained message moved last_seen");
  } finally {
    for (const t of topics) await pub.publishAsync(t, "", { qos: 1, retain: true });
    await pub.endAsync();
    await collector?.stop();
  }
});
