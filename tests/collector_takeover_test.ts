// Two collectors started with one MQTT_CLIENT_ID take the broker session from each other. Each
// says so once, naming MQTT_CLIENT_ID, reconnects with a delay that grows instead of looping, and
// no reading is lost. With DATABASE_URL both are collector.ts processes writing one database;
// without, two PGlite fixtures, each with its own database (then the stream is split between them,
// which is why the ids must differ). The broker is MQTT_URL's (MQTT 5: reason "session taken over")
// or an embedded one (MQTT 3.1.1: connections closed right after they were accepted).
import { equal, ok } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import { type Queryable } from "../lib/db/mod.ts";
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

/** Epoch milliseconds of each "Connected to the MQTT broker" line in `log`. */
function connectTimes(log: string): number[] {
  return [...log.matchAll(/^(\S+) INFO +\[collector\] Connected to the MQTT broker/gm)]
    .map((m) => Date.parse(m[1]));
}

async function co2Values(db: Queryable, device: string): Promise<number[]> {
  const rows = await db.sql<{ co2: number }>`
    select m.co2::float8 as co2 from scd30_measurements m join sensors s using (sensor_id)
    where s.device_id = ${device}`;
  return rows.map((r) => r.co2);
}

Deno.test("two collectors with one MQTT_CLIENT_ID: one clear error each, a growing reconnect delay, every reading stored", async () => {
  await using db = Deno.env.get("DATABASE_URL") ? await withTestDb() : undefined;
  const broker = await testBroker();
  const dirs = [await collectorDataDir(), await collectorDataDir()];
  const id = suffix();
  const device = `takeover_${id}`;
  const clientId = `collector-takeover-${id}`;
  const pub = await connectClient(broker.url, `pub-takeover-${id}`);
  const spawn = (dataDir: string) =>
    spawnCollector({ dbUrl: db?.url, db, dataDir, mqttUrl: broker.url, clientId, device });
  const children: CollectorChild[] = [];
  try {
    children.push(spawn(dirs[0]));
    await children[0].waitForLog(/Subscribed/);
    children.push(spawn(dirs[1]));
    const [a, b] = children;
    // From the second one's first connection on, they take the session from each other.
    await b.waitForLog(/Connected to the MQTT broker/, 120_000);
    const startedAt = connectTimes(b.stderr())[0];
    // 2,000 readings over about 20 s while both run.
    const total = 2000;
    await publishReadings(pub, { device, from: 0, to: total, chunk: 50, pauseMs: 500 });
    await new Promise((r) => setTimeout(r, Math.max(0, 25_000 - (Date.now() - startedAt))));
    const windowMs = Date.now() - startedAt;

    const connects = [a, b].map((c) => connectTimes(c.stderr()).filter((t) => t >= startedAt));
    const errors = [a, b].map((c) =>
      c.stderr().match(/^.* ERROR .*MQTT_CLIENT_ID \(collector-takeover-\w+\).*$/gm) ?? []
    );
    console.log(
      `  in ${windowMs} ms: ${connects[0].length} and ${connects[1].length} connections; ` +
        `delays between them ${
          connects.map((t) => t.slice(1).map((x, i) => x - t[i]).join("/")).join(" and ")
        } ms`,
    );
    // Each says why, once, naming the variable and the id.
    for (const e of errors) ok(e.length <= 1, e.join("\n"));
    ok(errors[0].length + errors[1].length >= 1, a.stderr() + b.stderr());
    for (const e of errors.flat()) ok(e.includes(clientId), e);
    // Far from a tight loop (a fixed 1 s delay makes some 25 connections each in this window),
    // and the delay grows.
    for (const t of connects) {
      ok(t.length <= 8, `${t.length} connections in ${windowMs} ms`);
      const gaps = t.slice(1).map((x, i) => x - t[i]);
      if (gaps.length >= 3) ok(gaps[gaps.length - 1] > gaps[0], `delays ${gaps.join("/")}`);
    }

    // The second one stops; the first keeps the session and takes what is left.
    b.kill("SIGTERM");
    equal((await b.status).code, 0, b.stderr());
    const stored = async (): Promise<number[]> => {
      if (db) return await co2Values(db, device);
      const other = await openChildPglite(dirs[1]);
      try {
        const mine = await a.rows();
        return [...await co2Values(other, device), ...Array(mine).fill(-1)];
      } finally {
        await other.close();
      }
    };
    if (db) {
      await waitFor("every reading", async () => (await stored()).length >= total, {
        timeoutMs: 90_000,
        detail: async () => `${(await stored()).length}\n${a.stderr()}`,
      });
    } else {
      // Two databases: the first collector's rows plus the second's add up to at least all.
      await waitFor("every reading", async () => (await stored()).length >= total, {
        timeoutMs: 90_000,
      });
    }
    a.kill("SIGTERM");
    equal((await a.status).code, 0, a.stderr());

    if (db) {
      const counts = await countReadings(db, device);
      equal(counts.columnar, total);
      equal(counts.co2Sum, sumTo(total));
    } else {
      const values = new Set<number>();
      for (const dir of dirs) {
        const pg = await openChildPglite(dir);
        try {
          for (const v of await co2Values(pg, device)) values.add(v);
        } finally {
          await pg.close();
        }
      }
      equal(values.size, total, "every reading is in one of the two databases");
      equal([...values].reduce((s, v) => s + v, 0), sumTo(total));
    }
  } finally {
    for (const c of children) {
      try {
        c.kill("SIGKILL");
      } catch {
        // already gone
      }
      await c.status;
    }
    await pub.endAsync();
    await clearSession(broker.url, clientId);
    await broker.close();
    for (const dir of dirs) await removeDataDir(dir);
  }
});
