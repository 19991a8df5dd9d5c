// The simulator against a real broker: Mosquitto when MQTT_URL is set, the embedded broker
// otherwise. Topics are fixed by the MQTT contract, so each test uses its own device-id prefix and
// clears the retained messages it leaves behind.
import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { createServer } from "node:net";
import { Aedes } from "aedes";
import mqtt, { type MqttClient } from "mqtt";
import { startEmbeddedBroker } from "../lib/mqtt/mod.ts";
import { taskArgs } from "./fixtures/task_args.ts";
import {
  FleetStartError,
  type FleetStats,
  simulateFleet,
  type SimulateFleetOptions,
} from "../lib/simulate/mod.ts";

interface Received {
  topic: string;
  text: string;
  retain: boolean;
  qos: number;
  at: number;
}

async function useBroker(): Promise<{ url: string } & AsyncDisposable> {
  const url = Deno.env.get("MQTT_URL");
  if (url) return { url, [Symbol.asyncDispose]: async () => {} };
  const broker = await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  return { url: broker.url, [Symbol.asyncDispose]: () => broker.close() };
}

function uniquePrefix(): string {
  return `simtest-${crypto.randomUUID().slice(0, 8)}`;
}

/** Subscribes to `devices/#` and keeps what belongs to devices named `<prefix>-…`. */
async function record(url: string, prefix: string): Promise<
  { messages: Received[]; client: MqttClient } & AsyncDisposable
> {
  const client = await mqtt.connectAsync(url, {
    clientId: `${prefix}-watch-${crypto.randomUUID().slice(0, 6)}`,
    reconnectPeriod: 0,
  });
  const messages: Received[] = [];
  client.on("message", (topic, payload, packet) => {
    if (!topic.startsWith(`devices/${prefix}-`)) return;
    messages.push({
      topic,
      text: new TextDecoder().decode(payload),
      retain: packet.retain,
      qos: packet.qos,
      at: Date.now(),
    });
  });
  await client.subscribeAsync("devices/#", { qos: 1 });
  return { messages, client, [Symbol.asyncDispose]: () => client.endAsync() };
}

/** Deletes the retained capabilities and status of `ids` so a shared broker stays clean. */
async function clearRetained(url: string, ids: readonly string[]): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  for (const id of ids) {
    for (const t of ["capabilities", "status"]) {
      await client.publishAsync(`devices/${id}/${t}`, "", { qos: 1, retain: true });
    }
  }
  await client.endAsync();
}

async function runFleet(
  url: string,
  opts: Omit<SimulateFleetOptions, "url"> & { durationS: number },
): Promise<{ stats: FleetStats; ids: readonly string[] }> {
  const fleet = await simulateFleet({ url, reportEveryS: 0, ...opts });
  const stats = await fleet.finished;
  return { stats, ids: fleet.deviceIds };
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ROOMS = ["bedroom", "living_room", "office", "kitchen", "kids_room", "basement"];

Deno.test("a simulated fleet publishes what the MQTT contract says, at QoS 1, and says offline when stopped", async () => {
  await using broker = await useBroker();
  const prefix = uniquePrefix();
  await using rec = await record(broker.url, prefix);
  const startS = Date.now() / 1000;
  const { stats, ids } = await runFleet(broker.url, {
    prefix,
    devices: 3,
    intervalS: 1,
    durationS: 2.6,
    errorRate: 0.4,
    seed: "contract",
  });
  try {
    assertEquals(ids, [`${prefix}-01`, `${prefix}-02`, `${prefix}-03`]);
    await until(
      "every offline status",
      () =>
        ids.every((id) =>
          rec.messages.some((m) => m.topic === `devices/${id}/status` && m.text === "offline")
        ),
    );
    const endS = Date.now() / 1000;
    let errors = 0;
    for (const id of ids) {
      const mine = rec.messages.filter((m) => m.topic.startsWith(`devices/${id}/`));
      const kinds = mine.map((m) => m.topic.slice(`devices/${id}/`.length));
      // Announced first, said offline last.
      assertEquals(kinds.slice(0, 2).sort(), ["capabilities", "status"]);
      assertEquals(mine[mine.findIndex((m) => m.topic.endsWith("/status"))].text, "online");
      assertEquals(mine.at(-1)!.text, "offline");
      ok(mine.every((m) => m.qos === 1), "every message arrives at QoS 1");

      const caps = JSON.parse(mine.find((m) => m.topic.endsWith("/capabilities"))!.text);
      assertEquals(caps.sensors, ["scd30", "bmp280"]);
      ok(ROOMS.includes(caps.device_location), caps.device_location);
      for (const key of ["device_name", "firmware_version"]) {
        ok(typeof caps[key] === "string" && caps[key] !== "", key);
      }
      ok(typeof caps.metadata.scd30.location === "string");
      ok(typeof caps.metadata.bmp280.location === "string");

      const data = mine.filter((m) => m.topic.includes("/sensors/"));
      ok(data.length >= 2, `${id} published ${data.length} readings`);
      for (const m of data) {
        const type = m.topic.split("/")[3];
        const body = JSON.parse(m.text);
        ok(Number.isInteger(body.timestamp), "timestamps are whole seconds at a 1 s interval");
        ok(body.timestamp >= Math.floor(startS) && body.timestamp <= endS, `${body.timestamp}`);
        const metrics = Object.keys(body.value).sort();
        if (type === "scd30") {
          assertEquals(metrics, ["co2", "humidity", "temperature"]);
          ok(body.value.co2.reading >= 400 && body.value.co2.reading <= 2000);
          ok(body.value.humidity.reading >= 35 && body.value.humidity.reading <= 65);
        } else {
          assertEquals(type, "bmp280");
          assertEquals(metrics, ["pressure", "temperature"]);
          ok(body.value.pressure.reading > 985 && body.value.pressure.reading < 1042);
        }
        ok(body.value.temperature.reading >= 19 && body.value.temperature.reading <= 24);
      }
      for (const m of mine.filter((m) => m.topic.endsWith("/error"))) {
        const body = JSON.parse(m.text);
        ok(["scd30", "bmp280"].includes(body.sensor));
        ok(typeof body.error === "string" && body.error.length > 0);
        errors++;
      }
    }
    ok(errors > 0, "with --error-rate 0.4 some sensor faults are reported");
    assertEquals(stats.errors, errors);
    assertEquals(stats.failed, 0);
    assertEquals(stats.acked, stats.published);

    // Someone subscribing later finds each device's capabilities and its offline status retained.
    await using late = await record(broker.url, prefix);
    await until("retained messages", () => late.messages.length >= 6);
    for (const id of ids) {
      const retained = late.messages.filter((m) => m.topic.startsWith(`devices/${id}/`));
      ok(retained.every((m) => m.retain));
      assertEquals(retained.find((m) => m.topic.endsWith("/status"))?.text, "offline");
      ok(retained.some((m) => m.topic.endsWith("/capabilities")));
    }
  } finally {
    await clearRetained(broker.url, ids);
  }
});

Deno.test("--rate spreads the load over many devices and stamps readings in milliseconds", async () => {
  await using broker = await useBroker();
  const prefix = uniquePrefix();
  await using rec = await record(broker.url, prefix);
  const { stats, ids } = await runFleet(broker.url, {
    prefix,
    devices: 20,
    rate: 200,
    durationS: 2,
    errorRate: 0,
    quietDevice: false,
  });
  try {
    await until(
      "every acknowledged message",
      () => rec.messages.filter((m) => m.topic.includes("/sensors/")).length >= stats.readings * 2,
    );
    const data = rec.messages.filter((m) => m.topic.includes("/sensors/"));
    // 200 msg/s for 2 s is about 400 messages; a loaded machine may start late but never runs ahead.
    ok(data.length >= 200 && data.length <= 420, `${data.length} data messages`);
    const perDevice = new Map<string, number>();
    for (const m of data) {
      perDevice.set(m.topic.split("/")[1], (perDevice.get(m.topic.split("/")[1]) ?? 0) + 1);
    }
    assertEquals([...perDevice.keys()].sort(), [...ids]);
    const counts = [...perDevice.values()];
    ok(Math.max(...counts) - Math.min(...counts) <= 4, `even spread: ${counts}`);
    for (const m of data) {
      const ts = JSON.parse(m.text).timestamp;
      ok(ts > 1.7e12 && ts <= Date.now(), `millisecond timestamp ${ts}`);
    }
    // Readings of one device are 0.2 s apart, so their timestamps never collide.
    const first = data.filter((m) => m.topic.startsWith(`devices/${ids[0]}/sensors/scd30`))
      .map((m) => JSON.parse(m.text).timestamp);
    assertEquals(new Set(first).size, first.length);
  } finally {
    await clearRetained(broker.url, ids);
  }
});

Deno.test("the quiet device stops publishing for a while without going offline, then comes back", async () => {
  await using broker = await useBroker();
  const prefix = uniquePrefix();
  await using rec = await record(broker.url, prefix);
  const { ids } = await runFleet(broker.url, {
    prefix,
    devices: 2,
    intervalS: 0.2,
    durationS: 2.6,
    errorRate: 0,
    quietAfterS: 0.8,
    quietForS: 1.0,
  });
  try {
    const [steady, quiet] = ids;
    const gaps = (id: string) => {
      const times = rec.messages.filter((m) => m.topic === `devices/${id}/sensors/scd30/data`)
        .map((m) => JSON.parse(m.text).timestamp as number);
      return times.slice(1).map((t, i) => t - times[i]);
    };
    ok(Math.max(...gaps(steady)) < 600, `steady gaps ${gaps(steady)}`);
    const quietGaps = gaps(quiet);
    ok(Math.max(...quietGaps) >= 900, `a quiet spell of about 1 s: ${quietGaps}`);
    // It kept publishing after the spell.
    ok(quietGaps.indexOf(Math.max(...quietGaps)) < quietGaps.length - 1, "it comes back");
    const statuses = () =>
      rec.messages.filter((m) => m.topic === `devices/${quiet}/status`).map((m) => m.text);
    // The "offline" said at the stop reaches the recording subscriber a moment after the fleet
    // ended.
    await until("the quiet device's offline", () => statuses().includes("offline"), 10_000);
    // Online at the start, online again when back, offline only at the stop: no will fired.
    assertEquals(statuses(), ["online", "online", "offline"]);
  } finally {
    await clearRetained(broker.url, ids);
  }
});

Deno.test("simulateFleet() names the broker when nothing listens there", async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((r) => server.close(() => r()));
  const url = `mqtt://127.0.0.1:${port}`;
  await rejects(
    simulateFleet({ url, connectTimeoutS: 1, reportEveryS: 0, prefix: uniquePrefix() }),
    (err: unknown) => {
      ok(err instanceof FleetStartError, String(err));
      ok(err.message.includes(url), err.message);
      ok(err.message.includes("connection refused"), err.message);
      ok(err.message.includes("MQTT_URL"), err.message);
      return true;
    },
  );
});

/** Runs `deno task simulate` (the `simulate` permission set) with `args` against `url`. */
function spawnSimulate(url: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: taskArgs("simulate", "./data", args),
    cwd: new URL("..", import.meta.url),
    env: { MQTT_URL: url, NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

/** `deno task simulate` with two boards, one reading each per half second, and their ids. */
function spawnTwoBoards(url: string, prefix: string): { child: Deno.ChildProcess; ids: string[] } {
  const args = ["--devices", "2", "--interval", "0.5", "--prefix", prefix];
  return { child: spawnSimulate(url, args), ids: [`${prefix}-01`, `${prefix}-02`] };
}

/** True once every device of `ids` has published data. */
function publishedData(messages: Received[], ids: string[]): boolean {
  return ids.every((id) => messages.some((m) => m.topic.startsWith(`devices/${id}/sensors/`)));
}

async function text(stream: ReadableStream<Uint8Array>): Promise<string> {
  return await new Response(stream).text();
}

Deno.test("deno task simulate stops cleanly on SIGTERM: each device says offline, exit status 0", async () => {
  await using broker = await useBroker();
  const prefix = uniquePrefix();
  await using rec = await record(broker.url, prefix);
  const { child, ids } = spawnTwoBoards(broker.url, prefix);
  const stderr = text(child.stderr);
  const stdout = text(child.stdout);
  try {
    await until("data from both devices", () => publishedData(rec.messages, ids), 15_000);
    child.kill("SIGTERM");
    const status = await child.status;
    const log = await stderr;
    assertEquals(status.code, 0, log);
    assertEquals(await stdout, "", "logs go to stderr only");
    ok(log.includes("fleet stopped said_offline=2/2"), log);
    // The broker acknowledged each "offline" before the simulator exited; it reaches the
    // recording subscriber a moment later.
    const statusesOf = (id: string) =>
      rec.messages.filter((m) => m.topic === `devices/${id}/status`).map((m) => m.text);
    await until(
      "every device's offline",
      () => ids.every((id) => statusesOf(id).length >= 2),
      10_000,
    );
    for (const id of ids) assertEquals(statusesOf(id), ["online", "offline"]);
  } finally {
    await clearRetained(broker.url, ids);
  }
});

Deno.test("a simulator killed outright leaves its devices offline through their last will", async () => {
  await using broker = await useBroker();
  const prefix = uniquePrefix();
  await using rec = await record(broker.url, prefix);
  const { child, ids } = spawnTwoBoards(broker.url, prefix);
  try {
    await until("data from both devices", () => publishedData(rec.messages, ids), 15_000);
    child.kill("SIGKILL");
    await child.status;
    await Promise.all([text(child.stdout), text(child.stderr)]);
    // The broker publishes the will as soon as it sees the connection drop.
    await until(
      "the will of every device",
      () =>
        ids.every((id) =>
          rec.messages.some((m) => m.topic === `devices/${id}/status` && m.text === "offline")
        ),
    );
  } finally {
    await clearRetained(broker.url, ids);
  }
});

Deno.test("deno task simulate explains a bad flag without a stack trace and exits with status 2", async () => {
  const child = spawnSimulate("mqtt://127.0.0.1:1", ["--devices", "many"]);
  const [status, out, err] = await Promise.all([
    child.status,
    text(child.stdout),
    text(child.stderr),
  ]);
  assertEquals(status.code, 2);
  assertEquals(out, "");
  ok(err.includes(`--devices must be a whole number ≥ 1 and ≤ 100000, got "many"`), err);
  ok(!/\bat .*\.ts:\d+/.test(err), `no stack trace: ${err}`);
});

Deno.test("simulateFleet() says so when the broker refuses the credentials, without the password", async () => {
  // The embedded broker has no accounts; an aedes broker that refuses everyone stands in.
  const aedes = await Aedes.createBroker({
    authenticate: (_client, _user, _pass, done) => {
      done(Object.assign(new Error("bad credentials"), { returnCode: 4 as const }), false);
    },
  });
  const server = createServer((socket) => aedes.handle(socket));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  try {
    await rejects(
      simulateFleet({
        url: `mqtt://127.0.0.1:${port}`,
        username: "sim",
        password: "hunter2-secret",
        connectTimeoutS: 5,
        reportEveryS: 0,
        prefix: uniquePrefix(),
      }),
      (err: unknown) => {
        ok(err instanceof FleetStartError, String(err));
        ok(err.message.includes("MQTT_USERNAME and MQTT_PASSWORD"), err.message);
        ok(!err.message.includes("hunter2"), err.message);
        return true;
      },
    );
  } finally {
    await new Promise<void>((r) => aedes.close(() => r()));
    await new Promise<void>((r) => server.close(() => r()));
  }
});
