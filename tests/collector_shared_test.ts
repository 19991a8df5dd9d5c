// Two collectors in one MQTT_SHARED_GROUP split the stream and store each message once. Needs a
// broker with shared subscriptions (Mosquitto via MQTT_URL); the embedded broker (aedes) has none.
import { equal, ok } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import { startCollector } from "../lib/ingest/mod.ts";
import {
  clearSession,
  collectorConfig,
  connectClient,
  countReadings,
  publishReadings,
  suffix,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";

const mqttUrl = Deno.env.get("MQTT_URL");

Deno.test("two collectors with MQTT_SHARED_GROUP store each message once between them", async () => {
  if (!mqttUrl) {
    console.log(
      "  SKIPPED: the embedded broker (aedes) has no shared subscriptions; " +
        "set MQTT_URL to a broker that has them (Mosquitto ≥ 1.6) to run this test",
    );
    return;
  }
  await using db = await withTestDb();
  const id = suffix();
  const device = `shared_${id}`;
  const group = `g${id}`;
  const dirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const clientIds = [`collector-a-${id}`, `collector-b-${id}`];
  const collectors = await Promise.all(clientIds.map((clientId, i) =>
    startCollector(
      db,
      collectorConfig({
        mqttUrl,
        dataDir: dirs[i],
        clientId,
        env: { MQTT_SHARED_GROUP: group },
      }),
      { flushIntervalMs: 20 },
    )
  ));
  const pub = await connectClient(mqttUrl, `pub-shared-${id}`);
  try {
    await waitFor("both subscriptions", () => collectors.every((c) => c.stats().mqttConnected));
    const total = 2000;
    await publishReadings(pub, { device, from: 0, to: total, pauseMs: 5 });
    await waitFor("every reading", async () => (await countReadings(db, device)).columnar >= total);
    // Give a duplicate delivery, were there one, the time to arrive.
    await new Promise((r) => setTimeout(r, 300));

    const counts = await countReadings(db, device);
    equal(counts.columnar, total);
    equal(counts.flexible, 3 * total);
    equal(counts.co2Sum, sumTo(total));
    const [a, b] = collectors.map((c) => c.stats().received);
    ok(a > 0 && b > 0, `the stream was not split: ${a} and ${b}`);
    // Other traffic on a shared broker may add to both; this test's messages came once.
    ok(a + b >= total && a + b < total * 1.5, `received ${a} + ${b} for ${total} messages`);
  } finally {
    await pub.endAsync();
    await Promise.all(collectors.map((c) => c.stop()));
    await Promise.all(clientIds.map((c) => clearSession(mqttUrl, c)));
    await Promise.all(dirs.map((d) => Deno.remove(d, { recursive: true })));
  }
});
