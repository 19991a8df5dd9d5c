// The broker goes away and comes back empty (no session kept): the collector reconnects on its
// own and subscribes again. This needs a broker the test can restart, so it always uses the
// embedded one, on a fixed port across the restart; the database is DATABASE_URL's or PGlite.
import { equal, ok } from "node:assert/strict";
import { type AddressInfo, createServer, type Socket } from "node:net";
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

/**
 * A broker that answers CONNECT and PINGREQ, and SUBSCRIBE only from the second connection on:
 * the first connection stays up with its subscription unanswered.
 */
async function deafFirstBroker(): Promise<
  { port: number; connections: () => number; close: () => void }
> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    const n = ++connections;
    let buf = new Uint8Array(0);
    let level = 4;
    socket.on("data", (chunk: Uint8Array) => {
      const all = new Uint8Array(buf.length + chunk.length);
      all.set(buf);
      all.set(chunk, buf.length);
      buf = all;
      for (;;) {
        let len = 0, mul = 1, i = 1;
        for (; i < buf.length && i < 5; i++) {
          len += (buf[i] & 0x7f) * mul;
          mul *= 128;
          if (!(buf[i] & 0x80)) break;
        }
        if (i >= buf.length || buf.length < i + 1 + len) return;
        const type = buf[0] >> 4;
        const body = buf.subarray(i + 1, i + 1 + len);
        buf = buf.slice(i + 1 + len);
        if (type === 1) { // CONNECT: "MQTT" and its level
          level = body[6];
          socket.write(Uint8Array.from(level === 5 ? [0x20, 3, 0, 0, 0] : [0x20, 2, 0, 0]));
        } else if (type === 8 && n > 1) { // SUBSCRIBE: granted QoS 1 for each of the 4 topics
          const head = level === 5 ? [body[0], body[1], 0] : [body[0], body[1]];
          socket.write(Uint8Array.from([0x90, head.length + 4, ...head, 1, 1, 1, 1]));
        } else if (type === 12) socket.write(Uint8Array.from([0xd0, 0]));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    connections: () => connections,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

Deno.test("a collector whose subscription the broker never answers reconnects and subscribes", async () => {
  await using db = await withTestDb();
  const broker = await deafFirstBroker();
  const dataDir = await Deno.makeTempDir({ prefix: "collector-deaf-" });
  const collector = await startCollector(
    db,
    collectorConfig({
      mqttUrl: `mqtt://127.0.0.1:${broker.port}`,
      dataDir,
      clientId: `collector-deaf-${suffix()}`,
    }),
    { mqttSubscribeTimeoutMs: 500, mqttRetryMinMs: 100 },
  );
  try {
    await waitFor(
      "the subscription on a second connection",
      () => collector.stats().mqttConnected,
      {
        timeoutMs: 10_000,
      },
    );
    equal(broker.connections(), 2);
  } finally {
    await collector.stop();
    broker.close();
    await Deno.remove(dataDir, { recursive: true });
  }
});
