// The collector asks the broker (MQTT 5 CONNECT maximumPacketSize) not to send it messages over
// its limit, so a huge message is dropped by the broker instead of being buffered by the
// collector; the stream goes on. Needs Mosquitto (MQTT_URL): the embedded broker speaks MQTT 3.1.1,
// where the collector cuts oversized messages itself (lib/ingest/_packet_limit_test.ts).
import { equal } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import { startCollector } from "../lib/ingest/mod.ts";
import {
  collectorScene,
  connectClient,
  countReadings,
  reading,
  waitFor,
} from "./fixtures/collector_harness.ts";

Deno.test("a message far over the size limit is dropped by the broker, never buffered by the collector, and the stream goes on", async () => {
  if (!Deno.env.get("MQTT_URL")) {
    console.log("  (skipped: needs MQTT_URL, an MQTT 5 broker such as Mosquitto)");
    return;
  }
  await using db = await withTestDb();
  await using scene = await collectorScene("packetsize");
  const { broker, id, config } = scene;
  const device = `packetsize_${id}`;
  const collector = await startCollector(db, config, { flushIntervalMs: 20 });
  const pub = await connectClient(broker.url, `pub-packetsize-${id}`);
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    const topic = `devices/${device}/sensors/scd30/data`;
    await pub.publishAsync(topic, reading(1), { qos: 1 });
    await pub.publishAsync(topic, Buffer.alloc(16 << 20, 0x41), { qos: 1 });
    await pub.publishAsync(topic, reading(2), { qos: 1 });
    await waitFor("the readings around it", async () => {
      return (await countReadings(db, device)).columnar >= 2;
    });
    const stats = collector.stats();
    equal(stats.received, 2, "the 16 MiB message never reached the collector");
    equal((await countReadings(db, device)).co2Sum, 3);
    equal(collector.stats().mqttReconnects, 0);
  } finally {
    await pub.endAsync();
    await collector.stop();
  }
});
