import { deepEqual, equal, match, ok } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { ResolvedMonitorConfig } from "../lib/config/mod.ts";
import type { Db } from "../lib/db/mod.ts";
import { type TestDb, withTestDb } from "../lib/db/testing.ts";
import type { Logger } from "../lib/log/mod.ts";
import type { ToolDeps } from "../lib/mcp/deps.ts";
import { registerGetDeviceStatusTool } from "../lib/mcp/tools/get_device_status.ts";
import {
  type Monitor,
  NotificationRejected,
  PushoverNotifier,
  startMonitor,
  type StartMonitorOptions,
} from "../lib/monitor/mod.ts";
import { taskArgs } from "./fixtures/task_args.ts";
import { FakePushover } from "./fixtures/monitor_fake_pushover.ts";

const T0 = new Date("2026-03-01T12:00:00Z");

// Without DATABASE_URL, one in-memory PGlite serves every test of this file, emptied before each:
// opening and migrating PGlite takes seconds on a small machine. With DATABASE_URL each test gets
// its own database.
const shared = Deno.env.get("DATABASE_URL") ? undefined : await withTestDb();

/** An empty, migrated database for one test. */
async function testDb(): Promise<TestDb> {
  if (!shared) return await withTestDb();
  await shared.exec(
    "truncate devices, sensors, device_events, device_alerts, rejected_messages cascade",
  );
  return { ...shared, [Symbol.asyncDispose]: () => Promise.resolve() };
}
const THRESHOLD_S = 300;

/** A clock the test moves by hand, in seconds after T0. */
class Clock {
  t = T0;
  set(seconds: number): void {
    this.t = at(seconds);
  }
  now = (): Date => this.t;
}

function at(seconds: number): Date {
  return new Date(T0.getTime() + seconds * 1000);
}

/** A logger that keeps its lines for assertions. */
function recordingLog(): { log: Logger; lines: string[] } {
  const lines: string[] = [];
  const rec = (level: string) => (m: string, f?: Record<string, unknown>) => {
    lines.push(`${level} ${m}${f ? " " + JSON.stringify(f) : ""}`);
  };
  return {
    lines,
    log: { debug: rec("debug"), info: rec("info"), warn: rec("warn"), error: rec("error") },
  };
}

function config(pushover: FakePushover | undefined): ResolvedMonitorConfig {
  return {
    databaseUrl: undefined,
    pushover: pushover ? { user: "user-key", token: "app-token", apiUrl: pushover.url } : undefined,
    // Checks are driven by checkNow(); the timer never fires during a test.
    checkIntervalS: 3600,
    inactivityThresholdS: THRESHOLD_S,
    serverUrl: "https://sensors.example.net",
  };
}

interface DeviceSeed {
  name?: string;
  location?: string;
  firmware?: string;
  /** Seconds after T0 of the last reading. */
  lastSeen: number;
}

async function addDevice(db: Db, id: string, seed: DeviceSeed): Promise<void> {
  await db.sql`
    insert into devices (device_id, device_name, location, firmware_version, status,
                         first_seen, last_seen, last_received)
    values (${id}, ${seed.name ?? null}, ${seed.location ?? null}, ${seed.firmware ?? null},
            'online', ${at(-86400)}, ${at(seed.lastSeen)}, ${at(seed.lastSeen)})`;
  await db.sql`
    insert into sensors (device_id, sensor_type, last_seen)
    values (${id}, 'scd30', ${at(seed.lastSeen)})`;
  await db.sql`
    insert into device_events (time, device_id, kind, payload)
    values (${at(-86400)}, ${id}, 'status', '"online"'::jsonb)`;
}

/** The device sends a reading at `seconds`, as the collector records it. */
async function report(db: Db, id: string, seconds: number): Promise<void> {
  await db.sql`update devices set last_seen = ${at(seconds)}, last_received = ${at(seconds)},
                status = 'online' where device_id = ${id}`;
  await db.sql`update sensors set last_seen = ${at(seconds)} where device_id = ${id}`;
}

/** The device's status message (e.g. its MQTT last will), as the collector records it. */
async function setStatus(db: Db, id: string, status: string, seconds: number): Promise<void> {
  await db.sql`update devices set status = ${status}, last_seen = ${at(seconds)},
                last_received = ${at(seconds)} where device_id = ${id}`;
  await db.sql`insert into device_events (time, device_id, kind, payload)
                values (${at(seconds)}, ${id}, 'status', ${JSON.stringify(status)}::text::jsonb)`;
}

async function alertRow(db: Db, id: string) {
  const [row] = await db.sql<
    { state: string; pending: unknown; notified_at: Date | null; last_error: string | null }
  >`select state, pending, notified_at, last_error from device_alerts where device_id = ${id}`;
  return row;
}

/** Starts a monitor and stops it when disposed. */
async function monitor(
  db: Db,
  cfg: ResolvedMonitorConfig,
  opts: StartMonitorOptions,
): Promise<Monitor & AsyncDisposable> {
  const m = await startMonitor(db, cfg, opts);
  await m.firstCheck;
  return Object.assign(m, { [Symbol.asyncDispose]: () => m.stop() });
}

/** Instant retries that remember how long they were asked to wait. */
function fakeSleep(): { sleep: (ms: number) => Promise<void>; waits: number[] } {
  const waits: number[] = [];
  return { waits, sleep: (ms) => (waits.push(ms), Promise.resolve()) };
}

/**
 * Devices a, b and c seen at T0 (named "Sensor a"… when `named`); b and c report again at 390 s,
 * so at 400 s, where the returned clock stands, only a is silent.
 */
async function onlyASilent(db: Db, opts: { named?: boolean } = {}): Promise<Clock> {
  for (const id of ["a", "b", "c"]) {
    await addDevice(db, id, { name: opts.named ? `Sensor ${id}` : undefined, lastSeen: 0 });
  }
  await report(db, "b", 390);
  await report(db, "c", 390);
  const clock = new Clock();
  clock.set(400);
  return clock;
}

/** `db` refusing every statement with `new Error(reason)` while `down` is set. */
function flakyDb(db: Db, reason: string): { db: Db; down: boolean } {
  const refuse = () => Promise.reject(new Error(reason));
  const wrapped: Db = {
    ...db,
    sql: (s, ...v) => flaky.down ? refuse() : db.sql(s, ...v),
    query: (t, p) => flaky.down ? refuse() : db.query(t, p),
    transaction: (fn, o) => flaky.down ? refuse() : db.transaction(fn, o),
  };
  const flaky = { down: false, db: wrapped };
  return flaky;
}

Deno.test("the monitor sends exactly one alert when a device falls silent and one when it is back", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  await addDevice(db, "esp32-office", { name: "Office sensor", location: "office", lastSeen: 0 });
  await addDevice(db, "esp32-lab", { lastSeen: 0 });
  await addDevice(db, "esp32-hall", { lastSeen: 0 });
  const clock = new Clock();
  clock.set(60);
  const { log } = recordingLog();
  await using m = await monitor(db, config(pushover), { now: clock.now, log });
  equal(pushover.messages.length, 0, "all devices are fresh at start");
  equal(pushover.requests[0].path, "/1/users/validate.json", "credentials checked at start-up");

  await report(db, "esp32-lab", 390);
  await report(db, "esp32-hall", 390);
  clock.set(400);
  await m.checkNow();
  equal(pushover.messages.length, 1);
  const alert = pushover.messages[0];
  equal(alert.title, "Office sensor is silent");
  equal(
    alert.message,
    "Office sensor (esp32-office) in office has sent nothing for 7 min " +
      "(last seen 2026-03-01 12:00 UTC).",
  );
  equal(alert.token, "app-token");
  equal(alert.user, "user-key");
  equal(alert.priority, "0");
  equal(alert.timestamp, String(at(300).getTime() / 1000));
  equal(alert.url, "https://sensors.example.net/healthz");

  for (const s of [460, 520, 580]) {
    await report(db, "esp32-lab", s - 10);
    await report(db, "esp32-hall", s - 10);
    clock.set(s);
    await m.checkNow();
  }
  equal(pushover.messages.length, 1, "no repeat while the device stays silent");

  await report(db, "esp32-office", 1900);
  await report(db, "esp32-lab", 1900);
  await report(db, "esp32-hall", 1900);
  clock.set(1920);
  await m.checkNow();
  await m.checkNow();
  equal(pushover.messages.length, 2);
  equal(pushover.messages[1].title, "Office sensor is back");
  match(pushover.messages[1].message, /reporting again after 32 min out/);
  equal(pushover.messages[1].priority, "-1");
  const row = await alertRow(db, "esp32-office");
  equal(row.state, "online");
  equal(row.pending, null);
  deepEqual(row.notified_at, at(1920));
});

Deno.test("an offline status alerts at the next check without waiting for the threshold", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  for (const id of ["a", "b", "c"]) await addDevice(db, id, { lastSeen: 0 });
  const clock = new Clock();
  await using m = await monitor(db, config(pushover), { now: clock.now, log: recordingLog().log });
  await setStatus(db, "a", "offline", 20);
  clock.set(30);
  await m.checkNow();
  equal(pushover.messages.length, 1);
  equal(pushover.messages[0].title, "a went offline");
  match(pushover.messages[0].message, /reported itself offline at 2026-03-01 12:00 UTC/);
  equal((await alertRow(db, "a")).state, "offline");
});

Deno.test("when all devices fall silent at once the monitor sends one summary, then one when they return", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const ids = ["d1", "d2", "d3", "d4", "d5"];
  for (const id of ids) await addDevice(db, id, { name: `Sensor ${id}`, lastSeen: 0 });
  const clock = new Clock();
  await using m = await monitor(db, config(pushover), { now: clock.now, log: recordingLog().log });
  clock.set(400);
  await m.checkNow();
  clock.set(460);
  await m.checkNow();
  equal(pushover.messages.length, 1, "one message for five devices");
  equal(pushover.messages[0].title, "5 devices stopped reporting");
  match(pushover.messages[0].message, /5 of 5 are now silent or offline/);
  match(pushover.messages[0].message, /broker, the network or the collector is probably down/);
  for (const id of ids) match(pushover.messages[0].message, new RegExp(`Sensor ${id}`));

  for (const id of ids) await report(db, id, 900);
  clock.set(910);
  await m.checkNow();
  equal(pushover.messages.length, 2);
  equal(pushover.messages[1].title, "5 devices are reporting again");
});

Deno.test("a monitor restarted mid-outage neither repeats the alert nor forgets the recovery", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const clock = await onlyASilent(db);
  const opts = { now: clock.now, log: recordingLog().log };
  const first = await startMonitor(db, config(pushover), opts);
  await first.firstCheck;
  await first.stop();
  equal(pushover.messages.length, 1);
  equal(pushover.messages[0].title, "a is silent");

  await report(db, "b", 990);
  await report(db, "c", 990);
  clock.set(1000);
  {
    await using second = await monitor(db, config(pushover), opts);
    await second.checkNow();
    equal(pushover.messages.length, 1, "the restarted monitor does not repeat the alert");
  }
  // The device came back while no monitor was running.
  await report(db, "a", 1500);
  await report(db, "b", 1500);
  await report(db, "c", 1500);
  clock.set(1600);
  await using _third = await monitor(db, config(pushover), opts);
  equal(pushover.messages.length, 2);
  equal(pushover.messages[1].title, "a is back");
});

Deno.test("a Pushover 500 is retried after at least 5 s and the alert is delivered once", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const clock = await onlyASilent(db);
  pushover.replies = [500, 200];
  const { sleep, waits } = fakeSleep();
  await using m = await monitor(db, config(pushover), {
    now: clock.now,
    sleep,
    log: recordingLog().log,
  });
  equal(pushover.messages.length, 2, "one failed attempt, one delivered");
  deepEqual(pushover.messages[0], pushover.messages[1]);
  equal(waits.length, 1);
  ok(waits[0] >= 5000, `waited ${waits[0]} ms`);
  await report(db, "b", 450);
  await report(db, "c", 450);
  clock.set(460);
  await m.checkNow();
  equal(pushover.messages.length, 2, "not sent again");
  equal((await alertRow(db, "a")).pending, null);
});

Deno.test("an alert Pushover cannot take now stays pending and is delivered at the next check", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const clock = await onlyASilent(db);
  pushover.replies = [500, 500, 500];
  const { sleep, waits } = fakeSleep();
  const { log, lines } = recordingLog();
  await using m = await monitor(db, config(pushover), { now: clock.now, sleep, log });
  equal(pushover.messages.length, 3, "first attempt and two retries");
  ok(waits.every((w) => w >= 5000), `waits ${waits}`);
  const row = await alertRow(db, "a");
  ok(row.pending !== null, "still pending in device_alerts");
  match(row.last_error ?? "", /HTTP 500/);
  ok(lines.some((l) => /stays pending for the next check/.test(l)), lines.join("\n"));

  await report(db, "b", 450);
  await report(db, "c", 450);
  clock.set(460);
  await m.checkNow();
  equal(pushover.messages.length, 4);
  equal(pushover.messages[3].title, "a is silent");
  await m.checkNow();
  equal(pushover.messages.length, 4);
  equal((await alertRow(db, "a")).pending, null);
});

Deno.test("stopping the monitor during a retry wait keeps the alert pending for the next start", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const clock = await onlyASilent(db);
  pushover.replies = [500];
  let waiting!: () => void;
  const inRetryWait = new Promise<void>((r) => waiting = r);
  // A retry wait that only ends when the monitor stops.
  const sleep = (_ms: number, signal?: AbortSignal) =>
    new Promise<void>((_, reject) => {
      signal!.addEventListener("abort", () => reject(signal!.reason), { once: true });
      waiting();
    });
  const m = await startMonitor(db, config(pushover), {
    now: clock.now,
    sleep,
    log: recordingLog().log,
  });
  await inRetryWait;
  await m.stop();
  equal(pushover.messages.length, 1);
  ok((await alertRow(db, "a")).pending !== null, "still pending after stop");

  await using _again = await monitor(db, config(pushover), {
    now: clock.now,
    log: recordingLog().log,
  });
  equal(pushover.messages.length, 2);
  equal(pushover.messages[1].title, "a is silent");
  equal((await alertRow(db, "a")).pending, null);
});

Deno.test("a Pushover 400 is not retried and its error text is logged", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const clock = await onlyASilent(db);
  pushover.replies = [400];
  const { sleep, waits } = fakeSleep();
  const { log, lines } = recordingLog();
  await using m = await monitor(db, config(pushover), { now: clock.now, sleep, log });
  await m.checkNow();
  equal(pushover.messages.length, 1, "never retried");
  equal(waits.length, 0);
  ok(
    lines.some((l) =>
      l.startsWith("error") && l.includes("HTTP 400") &&
      l.includes("user identifier is not a valid user")
    ),
    lines.join("\n"),
  );
  const row = await alertRow(db, "a");
  equal(row.pending, null, "dropped, not pending");
  match(row.last_error ?? "", /user identifier is not a valid user/);
});

Deno.test("a Pushover 429 is logged as the monthly quota and not retried", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  const clock = await onlyASilent(db);
  pushover.replies = [429];
  const { sleep, waits } = fakeSleep();
  const { log, lines } = recordingLog();
  await using m = await monitor(db, config(pushover), { now: clock.now, sleep, log });
  await m.checkNow();
  equal(pushover.messages.length, 1);
  equal(waits.length, 0);
  ok(lines.some((l) => /HTTP 429: .*monthly message limit/.test(l)), lines.join("\n"));
});

Deno.test("without Pushover configuration the monitor only logs alerts and keeps running", async () => {
  await using db = await testDb();
  const clock = await onlyASilent(db, { named: true });
  const { log, lines } = recordingLog();
  await using m = await monitor(db, config(undefined), { now: clock.now, log });
  ok(lines.some((l) => /PUSHOVER_USER and PUSHOVER_TOKEN are not set/.test(l)));
  ok(lines.some((l) => /NOTIFICATION Sensor a is silent/.test(l)), lines.join("\n"));
  await report(db, "a", 450);
  clock.set(460);
  await m.checkNow();
  ok(lines.some((l) => /NOTIFICATION Sensor a is back/.test(l)), lines.join("\n"));
  equal((await alertRow(db, "a")).pending, null);
});

Deno.test("a bad Pushover token is reported at start-up and the monitor keeps running", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  pushover.validateReply = 400;
  await addDevice(db, "a", { lastSeen: 0 });
  const { log, lines } = recordingLog();
  const clock = new Clock();
  await using m = await monitor(db, config(pushover), { now: clock.now, log });
  ok(
    lines.some((l) =>
      l.startsWith("error") && l.includes("PUSHOVER_TOKEN") &&
      l.includes("application token is invalid")
    ),
    lines.join("\n"),
  );
  ok(!lines.join("\n").includes("app-token"), "the token itself is never logged");
  clock.set(400);
  await m.checkNow();
  equal(pushover.messages.length, 1, "checks go on");
});

Deno.test("the monitor logs a database failure and recovers at the next check", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  for (const id of ["a", "b", "c"]) await addDevice(db, id, { lastSeen: 0 });
  const flaky = flakyDb(db, "connection refused");
  const clock = new Clock();
  const { log, lines } = recordingLog();
  await using m = await monitor(flaky.db, config(pushover), { now: clock.now, log });
  flaky.down = true;
  await report(db, "b", 390);
  await report(db, "c", 390);
  clock.set(400);
  await m.checkNow();
  ok(lines.some((l) => /check failed; retrying at the next check: .*connection refused/.test(l)));
  equal(pushover.messages.length, 0);
  flaky.down = false;
  await m.checkNow();
  equal(pushover.messages.length, 1);
});

Deno.test("while the database is down the monitor logs the failure once, every 10 minutes at most, and once when it is back", async () => {
  await using db = await testDb();
  await using pushover = new FakePushover();
  await addDevice(db, "a", { lastSeen: 0 });
  const flaky = flakyDb(db, "cannot connect to postgres://monitor:s3cret@db.example:5432/sensors");
  const clock = new Clock();
  const { log, lines } = recordingLog();
  const cfg = {
    ...config(pushover),
    databaseUrl: "postgres://monitor:s3cret@db.example:5432/sensors",
  };
  // No lease: its connection would go to the unreachable db.example, not through `flaky`.
  await using m = await monitor(flaky.db, cfg, { now: clock.now, log, lease: null });
  const failures = () => lines.filter((l) => /^error .*database error/.test(l));
  const recoveries = () => lines.filter((l) => /^info Database reachable again/.test(l));
  flaky.down = true;
  // One check a minute: a single line, with the reason, until ten minutes have passed.
  for (let minute = 1; minute <= 10; minute++) {
    clock.set(minute * 60);
    await m.checkNow();
  }
  equal(failures().length, 1, lines.join("\n"));
  match(failures()[0], /cannot connect to postgres:\/\/monitor:\*\*\*@db\.example/);
  // Ten minutes after the first line, one reminder; then quiet again.
  clock.set(11 * 60);
  await m.checkNow();
  equal(failures().length, 2, lines.join("\n"));
  match(failures()[1], /still failing/);
  for (let minute = 12; minute <= 20; minute++) {
    clock.set(minute * 60);
    await m.checkNow();
  }
  equal(failures().length, 2, lines.join("\n"));
  equal(recoveries().length, 0);
  flaky.down = false;
  clock.set(21 * 60);
  await m.checkNow();
  clock.set(22 * 60);
  await m.checkNow();
  equal(recoveries().length, 1, lines.join("\n"));
  match(recoveries()[0], /"down_for_s":1200/);
  equal(failures().length, 2);
  ok(!lines.join("\n").includes("s3cret"), "the database password is never logged");
  // A new outage is reported again at once.
  flaky.down = true;
  clock.set(23 * 60);
  await m.checkNow();
  equal(failures().length, 3, lines.join("\n"));
  flaky.down = false;
});

Deno.test("PushoverNotifier trims long messages to Pushover's limits and links no loopback address", async () => {
  await using pushover = new FakePushover();
  const notifier = new PushoverNotifier({
    user: "u",
    token: "t",
    apiUrl: pushover.url + "/",
    serverUrl: "http://127.0.0.1:8000",
    log: recordingLog().log,
  });
  await notifier.send({
    title: "T".repeat(300),
    message: "é".repeat(2000),
    priority: 0,
    time: T0,
    deviceIds: ["a"],
  });
  const [sent] = pushover.messages;
  equal([...sent.title].length, 250);
  equal([...sent.message].length, 1024);
  ok(sent.message.endsWith("…"));
  equal(sent.url, undefined);
  equal(sent.timestamp, String(T0.getTime() / 1000));
});

Deno.test("PushoverNotifier retries when Pushover cannot be reached, then reports the failure", async () => {
  const closed = new FakePushover();
  const url = closed.url;
  await closed[Symbol.asyncDispose]();
  const { sleep, waits } = fakeSleep();
  const { log, lines } = recordingLog();
  const notifier = new PushoverNotifier({
    user: "u",
    token: "secret-token",
    apiUrl: url,
    sleep,
    retryDelaysMs: [1000, 20000],
    log,
  });
  const error = await notifier.send({
    title: "x",
    message: "y",
    priority: 0,
    time: T0,
    deviceIds: [],
  }).then(() => undefined, (e: Error) => e);
  ok(error instanceof Error && !(error instanceof NotificationRejected), String(error));
  match(error.message, /^Cannot reach Pushover at 127\.0\.0\.1:\d+/);
  deepEqual(waits, [5000, 20000], "a delay under 5 s is raised to 5 s");
  ok(!lines.join("").includes("secret-token"));
});

async function connectTool(db: Db) {
  const server = new McpServer({ name: "test", version: "0" });
  const deps = { db, config: { monitor: { inactivityThresholdS: THRESHOLD_S } } };
  registerGetDeviceStatusTool(server, deps as unknown as ToolDeps);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "c", version: "0" });
  await Promise.all([server.connect(a), client.connect(b)]);
  return {
    client,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
    },
  };
}

type Text = { type: string; text: string }[];

Deno.test("get_device_status reports health, alert state and latest errors of each device", async () => {
  await using db = await testDb();
  const now = Date.now();
  const ago = (s: number) => new Date(now - s * 1000);
  const seed = [
    ["office", "Office sensor", "office", "1.4.2", ago(20), "online"],
    ["bedroom", "Bedroom", "bedroom", "1.4.1", ago(900), "online"],
    ["garage", null, null, null, ago(30), "offline"],
  ] as const;
  for (const [id, name, location, fw, seen, status] of seed) {
    await db.sql`insert into devices (device_id, device_name, location, firmware_version, status,
                                      first_seen, last_seen, last_received)
                 values (${id}, ${name}, ${location}, ${fw}, ${status}, ${ago(86400)}, ${seen},
                         ${seen})`;
    await db.sql`insert into sensors (device_id, sensor_type, last_seen)
                 values (${id}, 'scd30', ${id === "garage" ? ago(60) : seen})`;
    await db.sql`insert into device_events (time, device_id, kind, payload)
                 values (${seen}, ${id}, 'status', ${JSON.stringify(status)}::text::jsonb)`;
  }
  const errors = [
    [ago(100_000), { message: "old failure" }],
    [ago(3000), { message: "SCD30 not responding", code: 3 }],
    [ago(2000), "i2c bus timeout"],
    [ago(1000), { code: 7 }],
  ] as const;
  for (const [time, payload] of errors) {
    await db.sql`insert into device_events (time, device_id, kind, payload)
                 values (${time}, 'bedroom', 'error', ${JSON.stringify(payload)}::text::jsonb)`;
  }
  await db.sql`insert into device_alerts (device_id, state, since, notified_at)
               values ('bedroom', 'silent', ${ago(900)}, ${ago(590)})`;

  await using c = await connectTool(db);
  const all = await c.client.callTool({ name: "get_device_status", arguments: {} });
  equal(all.isError, undefined);
  const out = all.structuredContent as {
    inactivity_threshold_s: number;
    devices: {
      device_id: string;
      health: string;
      firmware_version: string | null;
      location: string | null;
      last_seen: string | null;
      alert: { state: string; notified_at: string | null; pending: string | null } | null;
      recent_errors: { time: string; message: string }[];
      errors_last_24h: number;
    }[];
  };
  equal(out.inactivity_threshold_s, THRESHOLD_S);
  deepEqual(
    out.devices.map((d) => [d.device_id, d.health]),
    [["bedroom", "silent"], ["garage", "offline"], ["office", "online"]],
  );
  const bedroom = out.devices[0];
  equal(bedroom.firmware_version, "1.4.1");
  equal(bedroom.location, "bedroom");
  equal(bedroom.last_seen, ago(900).toISOString());
  equal(bedroom.alert?.state, "silent");
  equal(bedroom.alert?.notified_at, ago(590).toISOString());
  equal(bedroom.alert?.pending, null);
  deepEqual(bedroom.recent_errors.map((e) => e.message), [
    '{"code":7}',
    "i2c bus timeout",
    "SCD30 not responding",
  ]);
  equal(bedroom.errors_last_24h, 3);
  equal(out.devices[2].alert, null);
  const text = (all.content as Text)[0].text;
  match(text, /3 device\(s\): 1 online, 1 silent, 1 offline/);
  match(
    text,
    /bedroom named "Bedroom" in "bedroom": SILENT, last seen .* \(15 min ago\), firmware "1\.4\.1"/,
  );
  match(text, /alert sent/);
  match(text, /i2c bus timeout/);

  const one = await c.client.callTool({
    name: "get_device_status",
    arguments: { device: "office sensor" },
  });
  deepEqual(
    (one.structuredContent as typeof out).devices.map((d) => d.device_id),
    ["office"],
  );
  const unknown = await c.client.callTool({
    name: "get_device_status",
    arguments: { device: "attic" },
  });
  equal(unknown.isError, true);
  equal(
    (unknown.content as Text)[0].text,
    'No device has the id or name "attic". Known devices: bedroom, garage, office.',
  );
});

const ROOT = new URL("../", import.meta.url);

Deno.test("monitor.ts refuses to start without DATABASE_URL and says where the monitor runs instead", async () => {
  const env = { ...Deno.env.toObject(), DATABASE_URL: "", DB_HOST: "" };
  const out = await new Deno.Command(Deno.execPath(), {
    args: taskArgs("monitor"),
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  equal(out.code, 2, stderr);
  match(stderr, /DATABASE_URL is not set.*deno task serve/);
  equal(out.stdout.length, 0, "nothing on stdout");
});

const realDb = Deno.env.get("DATABASE_URL");
if (!realDb) {
  console.warn(
    "SKIPPING the monitor.ts child-process test: it needs DATABASE_URL (PostgreSQL), " +
      "because the embedded database belongs to one process",
  );
}

Deno.test({
  name: "monitor.ts alerts through Pushover and exits 0 on SIGTERM",
  ignore: !realDb,
  async fn() {
    await using db = await testDb();
    await using pushover = new FakePushover();
    const now = Date.now();
    await db.sql`insert into devices (device_id, device_name, status, first_seen, last_seen,
                                      last_received)
                 values ('esp32-attic', 'Attic', 'online', ${new Date(now - 86400_000)},
                         ${new Date(now - 600_000)}, ${new Date(now - 600_000)})`;
    const child = new Deno.Command(Deno.execPath(), {
      args: taskArgs("monitor"),
      cwd: ROOT,
      env: {
        DATABASE_URL: db.url!,
        PUSHOVER_USER: "user-key",
        PUSHOVER_TOKEN: "app-token",
        PUSHOVER_API_URL: pushover.url,
        CHECK_INTERVAL: "1",
        INACTIVITY_THRESHOLD: "300",
      },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    const stdout = new Response(child.stdout).text();
    try {
      for (let i = 0; i < 300 && pushover.messages.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      child.kill("SIGTERM");
    }
    const status = await child.status;
    const log = await stderr;
    equal(await stdout, "");
    equal(status.code, 0, log);
    equal(pushover.messages.length, 1, log);
    equal(pushover.messages[0].title, "Attic is silent");
    match(log, /Monitor stopped/);
  },
});
