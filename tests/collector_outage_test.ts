// PostgreSQL goes away in the middle of a stream: the collector keeps acknowledging into its
// journal, retries, and stores everything once the database is back. With DATABASE_URL the
// database really becomes unreachable (a loopback proxy in front of it is cut); without, the
// embedded database is wrapped so that every call fails for a while.
import { equal, ok } from "node:assert/strict";
import { type Db, openDb } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { startCollector } from "../lib/ingest/mod.ts";
import {
  collectorScene,
  connectClient,
  countReadings,
  flakyDb,
  publishReadings,
  startTcpProxy,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";

Deno.test("a database outage mid-stream loses no reading: the journal holds them until it returns", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("outage");
  const { broker, dataDir, id, config } = scene;
  const device = `outage_${id}`;

  // The collector's own way to the database, which the test can take away.
  let collectorDb: Db;
  let goDown: () => void;
  let comeBack: () => void;
  let closeLink: () => Promise<void>;
  if (db.url) {
    const target = new URL(db.url);
    const proxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(db.url);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    collectorDb = await openDb({ databaseUrl: viaProxy.toString(), dataDir, max: 2 });
    goDown = () => proxy.cut();
    comeBack = () => proxy.restore();
    closeLink = async () => {
      await collectorDb.close();
      await proxy.close();
    };
  } else {
    const flaky = flakyDb(db);
    collectorDb = flaky;
    goDown = () => flaky.down = true;
    comeBack = () => flaky.down = false;
    closeLink = async () => {};
  }

  const collector = await startCollector(
    collectorDb,
    config,
    {
      flushIntervalMs: 20,
      retryMinMs: 100,
      retryMaxMs: 400,
      slowWriteMs: 300,
      probeTimeoutMs: 500,
    },
  );
  const pub = await connectClient(broker.url, `pub-outage-${id}`);
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    const total = 1500;
    await publishReadings(pub, { device, from: 0, to: 500, pauseMs: 5 });
    await waitFor("the first readings", async () => (await countReadings(db, device)).columnar > 0);

    goDown();
    const during = publishReadings(pub, { device, from: 500, to: 1200, pauseMs: 5 });
    await waitFor("the collector to notice the outage", () => !collector.stats().dbUp);
    await during;
    // Every message of the outage is acknowledged into the journal, none is in the database.
    await waitFor("the journal to take the outage's messages", () => {
      return collector.stats().received >= 1200 && collector.stats().journalBytes > 0;
    });
    const storedDuringOutage = (await countReadings(db, device)).columnar;
    ok(
      storedDuringOutage < 1200,
      `${storedDuringOutage} readings stored while the database was away`,
    );
    ok(collector.stats().lagMs > 0);

    comeBack();
    await publishReadings(pub, { device, from: 1200, to: total, pauseMs: 5 });
    await waitFor(
      "every reading",
      async () => (await countReadings(db, device)).columnar >= total,
      {
        detail: async () =>
          JSON.stringify({ ...collector.stats(), ...(await countReadings(db, device)) }),
      },
    );

    const counts = await countReadings(db, device);
    equal(counts.columnar, total);
    equal(counts.flexible, 3 * total);
    equal(counts.co2Sum, sumTo(total));
    await waitFor("an empty journal", () => collector.stats().journalBytes === 0);
    const stats = collector.stats();
    ok(stats.dbUp);
    equal(stats.lagMs, 0);
  } finally {
    await pub.endAsync();
    comeBack();
    await collector.stop();
    await closeLink();
  }
});

Deno.test("a full journal holds acknowledgements, so the broker keeps the rest until the database is back", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("full");
  const { broker, id, config } = scene;
  const device = `full_${id}`;
  const flaky = flakyDb(db);
  config.journalMaxBytes = 40_000; // about 250 readings
  const collector = await startCollector(flaky, config, {
    flushIntervalMs: 20,
    retryMinMs: 50,
    retryMaxMs: 200,
  });
  const pub = await connectClient(broker.url, `pub-full-${id}`);
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    flaky.down = true;
    const total = 700;
    await publishReadings(pub, { device, from: 0, to: total, pauseMs: 5 });
    // The collector takes what fits, then stops acknowledging; nothing is dropped.
    let last = -1;
    await waitFor("the intake to stop", async () => {
      const now = collector.stats().received;
      const still = now === last && now > 0;
      last = now;
      if (!still) await new Promise((r) => setTimeout(r, 200));
      return still;
    });
    const held = collector.stats();
    ok(held.received < total, `received ${held.received} of ${total} with a full journal`);
    ok(held.journalBytes <= 40_000, `journal grew to ${held.journalBytes} bytes`);
    equal((await countReadings(db, device)).columnar, 0);

    flaky.down = false;
    await waitFor(
      "every reading",
      async () => (await countReadings(db, device)).columnar >= total,
      {
        detail: async () =>
          JSON.stringify({ ...collector.stats(), ...(await countReadings(db, device)) }),
      },
    );
    const counts = await countReadings(db, device);
    equal(counts.columnar, total);
    equal(counts.co2Sum, sumTo(total));
  } finally {
    flaky.down = false;
    await pub.endAsync();
    await collector.stop();
  }
});
