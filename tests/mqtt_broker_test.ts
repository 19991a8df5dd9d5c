// The embedded broker's defences: accounts, topic rules, packet size, retained messages, TLS.
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { connect as netConnect } from "node:net";
import mqtt, { type MqttClient } from "mqtt";
import { startEmbeddedBroker } from "../lib/mqtt/mod.ts";
import { writeSelfSignedCert } from "./fixtures/tls_cert.ts";

const SERVICE = { username: "collector", password: "service-secret-1" };

async function withBroker(
  extra: Parameters<typeof startEmbeddedBroker>[0] | Record<string, unknown>,
  fn: (b: Awaited<ReturnType<typeof startEmbeddedBroker>>, dir: string) => Promise<void>,
) {
  const dir = await Deno.makeTempDir({ prefix: "ambient-broker-" });
  await Deno.writeTextFile(
    `${dir}/devices.txt`,
    "# device accounts\nkitchen:kitchen-password\n\noffice:office-password\n",
  );
  const broker = await startEmbeddedBroker({
    host: "127.0.0.1",
    port: 0,
    ...SERVICE,
    deviceCredentialsFile: `${dir}/devices.txt`,
    reservedClientIds: ["ambient-collector-test"],
    ...extra,
  });
  try {
    await fn(broker, dir);
  } finally {
    await broker.close();
    await Deno.remove(dir, { recursive: true });
  }
}

function connect(url: string, opts: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = mqtt.connect(url, { reconnectPeriod: 0, connectTimeout: 5000, ...opts });
  return new Promise((resolve, reject) => {
    client.once("connect", () => {
      // Refused subscriptions are also emitted as errors; the tests check the promises.
      client.on("error", () => {});
      resolve(client);
    });
    client.once("error", (err) => {
      client.end(true);
      reject(err);
    });
    client.once("close", () => reject(new Error("closed")));
  });
}

function messages(client: MqttClient): { topic: string; payload: string; retain: boolean }[] {
  const got: { topic: string; payload: string; retain: boolean }[] = [];
  client.on("message", (topic, payload, packet) => {
    got.push({ topic, payload: payload.toString(), retain: packet.retain });
  });
  return got;
}

/** A board logged in with its own account from the test's credentials file. */
function connectDevice(url: string, id: string, opts: mqtt.IClientOptions = {}) {
  return connect(url, { clientId: id, username: id, password: `${id}-password`, ...opts });
}

const settle = (ms = 300) => new Promise((r) => setTimeout(r, ms));

Deno.test("with accounts, anonymous and wrong passwords are refused, the service account is not", async () => {
  await withBroker({}, async (b) => {
    await rejects(connect(b.url, { clientId: "anon" }), /Not authorized|Bad User|closed/i);
    await rejects(
      connect(b.url, { clientId: "x", username: "kitchen", password: "wrong-password" }),
      /bad user ?name or password|closed/i,
    );
    await rejects(
      connect(b.url, { clientId: "y", username: SERVICE.username, password: "nope" }),
      /bad user ?name or password|closed/i,
    );
    // A device may not take the collector's client id (that would end its session).
    await rejects(
      connect(b.url, {
        clientId: "ambient-collector-test",
        username: "kitchen",
        password: "kitchen-password",
      }),
      /Not authorized|closed/i,
    );
    const ok1 = await connect(b.url, { clientId: "ambient-collector-test", ...SERVICE });
    await ok1.endAsync();
  });
});

Deno.test("a device publishes only under its own id and cannot subscribe to everything", async () => {
  await withBroker({}, async (b) => {
    const collector = await connect(b.url, { clientId: "ambient-collector-test", ...SERVICE });
    const seen = messages(collector);
    const granted = await collector.subscribeAsync("#", { qos: 1 });
    equal(granted[0].qos, 1);

    const kitchen = await connectDevice(b.url, "kitchen");
    for (const filter of ["#", "devices/+/sensors/+/data", "devices/office/#", "$SYS/#"]) {
      const refused = await kitchen.subscribeAsync(filter).then(() => false, () => true);
      ok(refused, `subscription to ${filter} refused`);
    }
    const own = await kitchen.subscribeAsync("devices/kitchen/#");
    equal(own[0].qos, 0);
    await kitchen.publishAsync("devices/kitchen/status", "online", { qos: 1 });
    await settle();
    // Forging another device's status ends the forger's connection; nothing is delivered.
    const closed = new Promise<void>((r) => kitchen.once("close", () => r()));
    kitchen.publish("devices/office/status", "offline", { qos: 1 });
    await closed;
    kitchen.end(true);
    await settle();
    deepEqual(seen.map((m) => `${m.topic}=${m.payload}`), ["devices/kitchen/status=online"]);
    await collector.endAsync();
  });
});

Deno.test("a non-loopback listen address without accounts is refused at start", async () => {
  await rejects(
    startEmbeddedBroker({ host: "0.0.0.0", port: 0 }),
    (e: Error) => {
      match(e.message, /MQTT_LISTEN is "0\.0\.0\.0:0".*MQTT_USERNAME and MQTT_PASSWORD/);
      return true;
    },
  );
  const open = await startEmbeddedBroker({ host: "0.0.0.0", port: 0, allowInsecure: true });
  await open.close();
  const secured = await startEmbeddedBroker({ host: "0.0.0.0", port: 0, ...SERVICE });
  await secured.close();
});

/** A raw CONNECT packet (MQTT 3.1.1) with user name and password. */
function connectPacket(clientId: string, username: string, password: string): Uint8Array {
  const enc = new TextEncoder();
  const str = (s: string) => {
    const b = enc.encode(s);
    return [b.length >> 8, b.length & 255, ...b];
  };
  const body = [
    ...str("MQTT"),
    4,
    0xc2,
    0,
    60,
    ...str(clientId),
    ...str(username),
    ...str(password),
  ];
  return new Uint8Array([0x10, body.length, ...body]);
}

function rssMb(): number {
  return Deno.memoryUsage().rss / 1048576;
}

Deno.test("a 200 MB packet is refused from its header, without buffering it", async () => {
  await withBroker({}, async (b) => {
    const small = await connect(b.url, { clientId: "ambient-collector-test", ...SERVICE });
    const seen = messages(small);
    await small.subscribeAsync("devices/#", { qos: 0 });
    const device = await connectDevice(b.url, "kitchen");
    // Just under the limit passes.
    await device.publishAsync("devices/kitchen/error", "e".repeat(60_000), { qos: 1 });
    await device.endAsync();

    const before = rssMb();
    const socket = netConnect(b.port, "127.0.0.1");
    await new Promise((r) => socket.once("connect", r));
    socket.write(connectPacket("kitchen2", "kitchen", "kitchen-password"));
    await settle(200);
    const size = 200 * 1024 * 1024;
    // PUBLISH, QoS 0, remaining length 200 MB as a variable-length integer.
    const header = [0x30];
    for (let n = size; n > 0; n = Math.floor(n / 128)) {
      header.push((n % 128) | (n >= 128 ? 0x80 : 0));
    }
    const closed = new Promise<void>((r) => socket.once("close", () => r()));
    socket.on("error", () => {});
    socket.write(new Uint8Array(header));
    const chunk = new Uint8Array(1024 * 1024).fill(120);
    let sent = 0;
    let done = false;
    closed.then(() => done = true);
    // Keep sending until the broker hangs up (or 64 MB, which it must never accept).
    while (!done && sent < 64 * 1024 * 1024) {
      if (!socket.write(chunk)) {
        await Promise.race([new Promise((r) => socket.once("drain", r)), closed]);
      }
      sent += chunk.length;
    }
    await closed;
    ok(done, "the broker closed the connection");
    ok(sent < 32 * 1024 * 1024, `${sent} bytes sent before the broker hung up`);
    const grown = rssMb() - before;
    console.log(
      `sent ${(sent / 1048576).toFixed(1)} MB before the hang-up; RSS +${grown.toFixed(1)} MB`,
    );
    ok(grown < 64, `server RSS grew ${grown.toFixed(1)} MB`);
    await settle();
    deepEqual(seen.map((m) => m.payload.length), [60_000]);
    await small.endAsync();
  });
});

Deno.test("retained messages are kept only on capabilities and status topics, and capped", async () => {
  await withBroker({ maxRetained: 2 }, async (b) => {
    const pub = await connect(b.url, { clientId: "svc", ...SERVICE });
    await pub.publishAsync("devices/kitchen/sensors/scd30/data", "{}", { qos: 1, retain: true });
    await pub.publishAsync("devices/kitchen/error", "boom", { qos: 1, retain: true });
    await pub.publishAsync("other/topic", "x", { qos: 1, retain: true });
    await pub.publishAsync("devices/kitchen/status", "online", { qos: 1, retain: true });
    await pub.publishAsync("devices/kitchen/capabilities", '{"sensors":[]}', {
      qos: 1,
      retain: true,
    });
    // Over the cap of two topics: delivered, not kept.
    await pub.publishAsync("devices/office/status", "online", { qos: 1, retain: true });
    const late = await connect(b.url, { clientId: "late", ...SERVICE });
    const got = messages(late);
    await late.subscribeAsync("#", { qos: 1 });
    await settle();
    deepEqual(
      got.filter((m) => m.retain).map((m) => m.topic).sort(),
      ["devices/kitchen/capabilities", "devices/kitchen/status"],
    );
    // Clearing one frees a place.
    await pub.publishAsync("devices/kitchen/capabilities", "", { qos: 1, retain: true });
    await pub.publishAsync("devices/office/status", "online", { qos: 1, retain: true });
    const later = await connect(b.url, { clientId: "later", ...SERVICE });
    const got2 = messages(later);
    await later.subscribeAsync("devices/+/status", { qos: 1 });
    await settle();
    deepEqual(got2.map((m) => m.topic).sort(), ["devices/kitchen/status", "devices/office/status"]);
    await Promise.all([pub.endAsync(), late.endAsync(), later.endAsync()]);
  });
});

Deno.test("mqtts from PEM files, with a plain loopback listener for this process", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ambient-tls-" });
  try {
    await writeSelfSignedCert(dir);
    await withBroker(
      { tlsCertFile: `${dir}/cert.pem`, tlsKeyFile: `${dir}/key.pem` },
      async (b) => {
        match(b.url, /^mqtts:\/\/127\.0\.0\.1:\d+$/);
        match(b.localUrl, /^mqtt:\/\/127\.0\.0\.1:\d+$/);
        const ca = await Deno.readTextFile(`${dir}/cert.pem`);
        const sub = await connect(b.localUrl, { clientId: "svc", ...SERVICE });
        const got = messages(sub);
        await sub.subscribeAsync("devices/#", { qos: 1 });
        const device = await connectDevice(b.url, "kitchen", { ca });
        await device.publishAsync("devices/kitchen/status", "online", { qos: 1 });
        await settle();
        deepEqual(got.map((m) => m.payload), ["online"]);
        // A refusal reaches the client whole over TLS too (CONNACK written in pieces).
        await rejects(connect(b.url, { clientId: "anon", ca }), /Not authorized/);
        // Plain MQTT on the TLS port gets nowhere.
        await rejects(connect(b.url.replace("mqtts", "mqtt"), { clientId: "p", ...SERVICE }));
        // An untrusted certificate is refused by a client that checks it.
        await rejects(connect(b.url, { clientId: "q", ...SERVICE }));
        await Promise.all([sub.endAsync(), device.endAsync()]);
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
