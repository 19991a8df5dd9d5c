// The broker goes away and comes back empty (no session kept): the collector reconnects on its
// own and subscribes again. This needs a broker the test can restart, so it always uses the
// embedded one, on a fixed port across the restart; the database is DATABASE_URL's or PGlite.
import { equal, ok } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import { startCollector } from "../lib/ingest/mod.ts";
import { startEmbeddedBroker } from "../lib/mqtt/mod.ts";
import {
  collectorConfig,
  connectClient,
  countReadings,
  publishReadings,
  suffix,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";

Deno.test("the collector reconnects to a restarted broker and subscribes again", async () => {
  await using db = await withTestDb();
  let broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  const port = broker.port;
  const dataDir = await Deno.makeTempDir({ prefix: "collector-reconnect-" });
  const id = suffix();
  const device = `reconnect_${id}`;
  const collector = await startCollector(
    db,
    collectorConfig({ mqttUrl: broker.url, dataDir, clientId: `collector-reconnect-${id}` }),
    { flushIntervalMs: 20 },
  );
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    let pub = await connectClient(broker.url, `pub-reconnect-${id}`);
    await publishReadings(pub, { device, from: 0, to: 100 });
    await waitFor("the first readings", async () => {
      return (await countReadings(db, device)).columnar === 100;
    });
    await pub.endAsync(true);

    // The broker restarts and forgets every session and subscription.
    await broker.close();
    await waitFor("the collector to notice", () => !collector.stats().mqttConnected);
    broker = await startEmbeddedBroker({ host: "127.0.0.1", port });
    await waitFor("the new subscription", () => collector.stats().mqttConnected, {
      timeoutMs: 20_000,
    });

    pub = await connectClient(broker.url, `pub-reconnect-2-${id}`);
    await publishReadings(pub, { device, from: 100, to: 200 });
    await waitFor("the readings sent after the restart", async () => {
      return (await countReadings(db, device)).columnar === 200;
    });
    await pub.endAsync();
    const counts = await countReadings(db, device);
    equal(counts.co2Sum, sumTo(200));
    ok(collector.stats().received >= 200);
  } finally {
    await collector.stop();
    await broker.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
