import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import mqtt, { type MqttClient } from "mqtt";
import { startEmbeddedBroker } from "./embedded_broker.ts";

function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, ...opts });
  return new Promise((resolve, reject) => {
    client.once("connect", () => resolve(client));
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
  });
}

function collect(client: MqttClient, count: number): Promise<string[]> {
  const got: string[] = [];
  return new Promise((resolve) => {
    client.on("message", (_topic, payload) => {
      got.push(payload.toString());
      if (got.length === count) resolve(got);
    });
  });
}

Deno.test("startEmbeddedBroker() delivers QoS 1 messages between MQTT.js clients on a free port", async () => {
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  try {
    assertEquals(broker.url, `mqtt://127.0.0.1:${broker.port}`);
    const sub = await connect(broker.url, { clientId: "sub-a" });
    const pub = await connect(broker.url, { clientId: "pub-a" });
    await sub.subscribeAsync("devices/+/status", { qos: 1 });
    const received = collect(sub, 3);
    for (const s of ["one", "two", "three"]) {
      await pub.publishAsync("devices/d1/status", s, { qos: 1 });
    }
    assertEquals(await received, ["one", "two", "three"]);
    await pub.endAsync();
    await sub.endAsync();
  } finally {
    await broker.close();
  }
});

Deno.test("startEmbeddedBroker() keeps QoS 1 messages for a persistent session while it is away", async () => {
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  try {
    const opts = { clientId: "collector-x", clean: false };
    const first = await connect(broker.url, opts);
    await first.subscribeAsync("devices/+/sensors/+/data", { qos: 1 });
    await first.endAsync();

    const pub = await connect(broker.url, { clientId: "pub-b" });
    for (let i = 0; i < 5; i++) {
      await pub.publishAsync("devices/d1/sensors/scd30/data", `m${i}`, { qos: 1 });
    }
    await pub.endAsync();

    // Subscribe to the message event before CONNACK: queued messages follow it immediately.
    const again = mqtt.connect(broker.url, { ...opts, reconnectPeriod: 0 });
    const received = collect(again, 5);
    assertEquals(await received, ["m0", "m1", "m2", "m3", "m4"]);
    await again.endAsync();
  } finally {
    await broker.close();
  }
});

Deno.test("startEmbeddedBroker() handOver() lets the kept client acknowledge all it holds, then takes no more", async () => {
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  try {
    // A collector that acknowledges nothing until the hand-over has begun, then takes 10 ms for
    // each message (its journal, under load).
    const collector = mqtt.connect(broker.url, {
      clientId: "collector-h",
      clean: false,
      reconnectPeriod: 0,
    });
    const acked: string[] = [];
    let release = () => {};
    const released = new Promise<void>((resolve) => release = resolve);
    collector.handleMessage = (packet, done) => {
      released.then(() =>
        setTimeout(() => {
          acked.push(String(packet.payload));
          done();
        }, 10)
      );
    };
    await new Promise((resolve) => collector.once("connect", resolve));
    await collector.subscribeAsync("devices/#", { qos: 1 });
    const device = await connect(broker.url, {
      clientId: "dev-h",
      will: { topic: "devices/dev-h/status", payload: "offline", qos: 1, retain: false },
    });
    const sent: string[] = [];
    for (let i = 0; i < 40; i++) {
      sent.push(`m${i}`);
      await device.publishAsync("devices/dev-h/sensors/scd30/data", `m${i}`, { qos: 1 });
    }
    // Every message is acknowledged to the device; none yet by the collector.
    assertEquals(acked.length, 0);
    const deviceClosed = new Promise<void>((resolve) => device.once("close", () => resolve()));
    const handedOver = broker.handOver(["collector-h"], 5000);
    release();
    assertEquals(await handedOver, 0);
    await deviceClosed;
    // All 40, and the closed device's will.
    assertEquals(acked.filter((m) => m.startsWith("m")), sent);
    assertEquals(acked.includes("offline"), true);
    // New connections are refused from now on.
    await rejects(() => connect(broker.url, { clientId: "dev-late" }));
    await device.endAsync(true);
    await collector.endAsync();
  } finally {
    await broker.close();
  }
});

Deno.test("startEmbeddedBroker() with firstSubscriber takes other clients only once it has subscribed", async () => {
  const broker = await startEmbeddedBroker({
    host: "127.0.0.1",
    port: 0,
    firstSubscriber: "collector-f",
  });
  try {
    // Before: a device is refused (CONNACK "server unavailable") and keeps its messages.
    await rejects(() => connect(broker.url, { clientId: "dev-early" }));
    assertEquals(await broker.opened(50), false);
    const collector = await connect(broker.url, { clientId: "collector-f", clean: false });
    await rejects(() => connect(broker.url, { clientId: "dev-still-early" }));
    await collector.subscribeAsync("devices/#", { qos: 1 });
    assertEquals(await broker.opened(5000), true);
    // After: devices connect, and what they publish reaches the collector.
    const got = collect(collector, 1);
    const device = await connect(broker.url, { clientId: "dev-f" });
    await device.publishAsync("devices/dev-f/sensors/scd30/data", "m0", { qos: 1 });
    assertEquals(await got, ["m0"]);
    await device.endAsync();
    await collector.endAsync();
  } finally {
    await broker.close();
  }
});

Deno.test("startEmbeddedBroker() close() disconnects clients and is idempotent", async () => {
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  const client = await connect(broker.url, { clientId: "c-close" });
  const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
  await broker.close();
  await closed;
  await broker.close();
  await client.endAsync(true);
});

Deno.test("startEmbeddedBroker() names the address when the port is taken", async () => {
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  try {
    await rejects(
      () => startEmbeddedBroker({ host: "127.0.0.1", port: broker.port }),
      { message: new RegExp(`127\\.0\\.0\\.1:${broker.port}: the address is already in use`) },
    );
  } finally {
    await broker.close();
  }
});
