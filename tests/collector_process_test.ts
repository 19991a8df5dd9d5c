// The collector as users run it: a separate process that is killed, restarted and stopped.
// With DATABASE_URL it is collector.ts itself under the `collect` permission set; without, the
// PGlite fixture. The broker is MQTT_URL's, or an embedded one in this process.
import { deepStrictEqual as assertEquals, equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { withTestDb } from "../lib/db/testing.ts";
import { Journal } from "../lib/ingest/journal.ts";
import { taskArgs } from "./fixtures/task_args.ts";
import {
  clearSession,
  type CollectorChild,
  collectorDataDir,
  connectClient,
  countReadings,
  openChildPglite,
  publishReadings,
  removeDataDir,
  spawnCollector,
  suffix,
  sumTo,
  testBroker,
  waitFor,
} from "./fixtures/collector_harness.ts";

const usePostgres = Boolean(Deno.env.get("DATABASE_URL"));

/** Everything one process test needs, torn down in reverse. */
async function setup(kind: string) {
  const db = usePostgres ? await withTestDb() : undefined;
  const broker = await testBroker();
  const dataDir = await collectorDataDir();
  const id = suffix();
  const device = `${kind}_${id}`;
  const pub = await connectClient(broker.url, `pub-${kind}-${id}`);
  const clientId = `collector-${kind}-${id}`;
  const spawn = () =>
    spawnCollector({ dbUrl: db?.url, db, dataDir, mqttUrl: broker.url, clientId, device });
  const finalCounts = async () => {
    if (db) return await countReadings(db, device);
    const pg = await openChildPglite(dataDir);
    try {
      return await countReadings(pg, device);
    } finally {
      await pg.close();
    }
  };
  return {
    dataDir,
    device,
    pub,
    spawn,
    finalCounts,
    async [Symbol.asyncDispose]() {
      await pub.endAsync();
      await clearSession(broker.url, clientId);
      await broker.close();
      await removeDataDir(dataDir);
      await db?.[Symbol.asyncDispose]();
    },
  };
}

/** Waits until the collector child has stored `n` readings; its log shows on a timeout. */
async function waitForRows(c: CollectorChild, what: string, n: number): Promise<void> {
  await waitFor(what, async () => (await c.rows()) >= n, {
    detail: async () => `rows=${await c.rows()}\n${c.stderr()}`,
  });
}

/** Stops the child with SIGTERM (exit code 0) and checks each of `total` readings is stored once. */
async function stopAndCountAll(
  t: Awaited<ReturnType<typeof setup>>,
  c: CollectorChild,
  total: number,
): Promise<void> {
  // The rows may all be there already (a previous run stored them): a signal while the process
  // still loads would end it before it listens for signals.
  await c.waitForLog(/Subscribed/);
  c.kill("SIGTERM");
  equal((await c.status).code, 0, c.stderr());
  assertEquals(await t.finalCounts(), {
    columnar: total,
    flexible: 3 * total,
    co2Sum: sumTo(total),
  });
}

Deno.test({
  name:
    "a collector killed with SIGKILL mid-stream stores every reading exactly once after a restart",
  fn: async () => {
    await using t = await setup("crash");
    const total = 3000;
    let c = t.spawn();
    await c.waitForLog(/Subscribed/);
    // Paced so that what piles up for the dead collector stays under Mosquitto's default queue.
    const firstPart = publishReadings(t.pub, { device: t.device, from: 0, to: 1200, pauseMs: 20 });
    await waitForRows(c, "the first stored readings", 400);
    c.kill("SIGKILL");
    equal((await c.status).signal, "SIGKILL");
    await firstPart; // the broker keeps these for the collector's persistent session

    c = t.spawn();
    await c.waitForLog(/Subscribed/);
    await publishReadings(t.pub, { device: t.device, from: 1200, to: total, pauseMs: 5 });
    await waitForRows(c, "every reading", total);
    await stopAndCountAll(t, c, total);
  },
});

Deno.test({
  name: "SIGTERM stops the collector with exit code 0 after writing its whole journal",
  fn: async () => {
    await using t = await setup("term");
    const total = 1200;
    let c = t.spawn();
    await c.waitForLog(/Subscribed/);
    const stream = publishReadings(t.pub, {
      device: t.device,
      from: 0,
      to: total,
      chunk: 50,
      pauseMs: 50,
    });
    await waitForRows(c, "the first stored readings", 200);
    c.kill("SIGTERM");
    const status = await c.status;
    equal(status.code, 0, c.stderr());
    if (usePostgres) match(c.stderr(), /SIGTERM: stopping/);
    match(c.stderr(), /Collector stopped/);
    // Everything acknowledged was written: nothing is left pending in the journal.
    const journal = Journal.open({ dir: join(t.dataDir, "journal"), maxBytes: 1 << 30 });
    const pending = journal.pendingBytes;
    journal.close();
    equal(pending, 0);
    await stream;

    // What arrived after the stop waited at the broker and is stored by the next run, once.
    c = t.spawn();
    await waitForRows(c, "every reading", total);
    await stopAndCountAll(t, c, total);
  },
});

async function runEntrypoint(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: taskArgs("collect", env.DATA_DIR ?? "./data"),
    cwd: new URL("../", import.meta.url),
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("collector.ts without DATABASE_URL exits 2 and points to deno task serve", async () => {
  const r = await runEntrypoint({ MQTT_URL: "mqtt://127.0.0.1:1" });
  equal(r.code, 2);
  match(r.stderr, /needs PostgreSQL: set DATABASE_URL/);
  match(r.stderr, /deno task serve/);
  ok(!/\n\s+at /.test(r.stderr), `stack trace shown:\n${r.stderr}`);
});

Deno.test("collector.ts without an MQTT broker exits 2 and says which variable to set", async () => {
  const r = await runEntrypoint({ DATABASE_URL: "postgres://u:secret@127.0.0.1:1/x" });
  equal(r.code, 2);
  match(r.stderr, /needs an MQTT broker: set MQTT_URL/);
  ok(!r.stderr.includes("secret"));
});

Deno.test("collector.ts with a bad JOURNAL_MAX_MB exits 2 naming the variable", async () => {
  const r = await runEntrypoint({
    DATABASE_URL: "postgres://127.0.0.1:1/x",
    MQTT_URL: "mqtt://127.0.0.1:1",
    JOURNAL_MAX_MB: "lots",
  });
  equal(r.code, 2);
  match(r.stderr, /JOURNAL_MAX_MB/);
  ok(!/\n\s+at /.test(r.stderr), `stack trace shown:\n${r.stderr}`);
});

Deno.test("collector.ts exits 1 with a short message when PostgreSQL refuses the password", async () => {
  const adminUrl = Deno.env.get("DATABASE_URL");
  if (!adminUrl) {
    console.log("  (skipped: needs DATABASE_URL, a PostgreSQL server that checks passwords)");
    return;
  }
  const u = new URL(adminUrl);
  u.username = "no_such_user_" + suffix();
  u.password = "wrong-password";
  const r = await runEntrypoint({ DATABASE_URL: u.toString(), MQTT_URL: "mqtt://127.0.0.1:1" });
  equal(r.code, 1);
  match(r.stderr, /Cannot connect to PostgreSQL/);
  ok(!r.stderr.includes("wrong-password"));
});
