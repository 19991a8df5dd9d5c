// The journal's disk fills while the database is away: on a real, small filesystem (a tmpfs the
// test mounts, as root, under the journal folder), the collector stops acknowledging, says so once
// with the path, and resumes by itself when space returns — in either order of "disk back" and
// "database back", also across a restart. Counted: readings published, acknowledged (journaled
// by the collector) and stored, each once. The same failure injected into the journal's file
// layer, without mounting, is in lib/ingest/journal_test.ts.
import { equal, match, ok } from "node:assert/strict";
import { join } from "node:path";
import { withTestDb } from "../lib/db/testing.ts";
import { type Collector, startCollector } from "../lib/ingest/mod.ts";
import {
  captureLog,
  clearSession,
  collectorDataDir,
  collectorScene,
  connectClient,
  countReadings,
  dbLink,
  fillDisk,
  mountTmpfs,
  openChildPglite,
  publishReadings,
  removeDataDir,
  spawnCollector,
  suffix,
  sumTo,
  testBroker,
  unmount,
  waitFor,
} from "./fixtures/collector_harness.ts";

const ROOT = new URL("../", import.meta.url);

const TUNING = {
  flushIntervalMs: 20,
  retryMinMs: 100,
  retryMaxMs: 400,
  slowWriteMs: 300,
  probeTimeoutMs: 500,
  stopTimeoutMs: 1000,
};

/** Waits until the collector has acknowledged nothing new for a second. */
async function waitForIntakeToStop(collectors: () => Collector): Promise<number> {
  let last = -1;
  let still = 0;
  await waitFor("the intake to stop", async () => {
    const now = collectors().stats().received;
    still = now === last ? still + 1 : 0;
    last = now;
    await new Promise((r) => setTimeout(r, 200));
    return still >= 5;
  });
  return last;
}

/** Mounts a tmpfs of `bytes` on `dir`, or says why the test cannot run here. */
async function mountOrSkip(dir: string, bytes: number): Promise<boolean> {
  if (await mountTmpfs(dir, bytes)) return true;
  console.log(
    "  (skipped: cannot mount a tmpfs here (needs root and mount); the same failure is " +
      "injected into the journal's file layer in lib/ingest/journal_test.ts)",
  );
  return false;
}

Deno.test("a 4 MiB journal disk that fills while the database is away: space freed first, then the database returns; every acknowledged reading stored once", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("diskfull4");
  const { broker, dataDir, id, config } = scene;
  const journalDir = join(dataDir, "journal");
  if (!(await mountOrSkip(journalDir, 4 << 20))) return;
  using log = captureLog();
  const device = `diskfull4_${id}`;
  await using link = await dbLink(db, dataDir);
  let collector: Collector | undefined;
  const pub = await connectClient(broker.url, `pub-diskfull4-${id}`);
  try {
    // About 600 KiB left for the journal: some 3,500 readings.
    const filler = fillDisk(journalDir, 600 << 10);
    collector = await startCollector(link.db, config, { ...TUNING, journalDir });
    const c = collector;
    await waitFor("the subscription", () => c.stats().mqttConnected);
    link.goDown();
    const total = 8000;
    await publishReadings(pub, { device, from: 0, to: total });
    const acked = await waitForIntakeToStop(() => c);
    ok(acked > 1000 && acked < total, `acknowledged ${acked} of ${total} on a full disk`);
    equal((await countReadings(db, device)).columnar, 0);
    const full = log.text().match(/No space left on the journal's disk[^\n]*/g) ?? [];
    equal(full.length, 1, log.text());
    match(full[0], new RegExp(`path=${journalDir.replaceAll("/", "\\/")}`));

    // Space returns while the database is still away: the intake resumes by itself.
    const freedAt = Date.now();
    await Deno.remove(filler);
    await waitFor("the intake to resume", () => c.stats().received > acked, { timeoutMs: 10_000 });
    const resumeMs = Date.now() - freedAt;
    await waitFor("every reading journaled", () => c.stats().received >= total);
    link.comeBack();
    await waitFor(
      "every reading",
      async () => (await countReadings(db, device)).columnar >= total,
      {
        detail: async () => JSON.stringify({ ...c.stats(), ...(await countReadings(db, device)) }),
      },
    );
    const counts = await countReadings(db, device);
    const stats = c.stats();
    console.log(
      `  4 MiB disk: published ${total}, acknowledged ${stats.received} (${acked} before the ` +
        `disk filled), stored ${counts.columnar}; intake resumed ${resumeMs} ms after space ` +
        "was freed",
    );
    equal(counts.columnar, total);
    equal(counts.flexible, 3 * total);
    equal(counts.co2Sum, sumTo(total));
    equal(stats.received, total, "each reading acknowledged once");
    equal(stats.quarantined, 0);
    ok(resumeMs < 5000, `resumed ${resumeMs} ms after space returned`);
    match(log.text(), /Journal writable again/);
    ok(!/Damaged|kept aside/.test(log.text()), log.text());
    await waitFor("an empty journal", () => c.stats().journalBytes === 0);
  } finally {
    link.comeBack();
    await pub.endAsync();
    await collector?.stop();
    await unmount(journalDir);
  }
});

Deno.test("a 2 MiB journal disk that fills while the database is away: a restart on the full disk, then the database returns before the space; every acknowledged reading stored once", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("diskfull2");
  const { broker, dataDir, id, config } = scene;
  const journalDir = join(dataDir, "journal");
  if (!(await mountOrSkip(journalDir, 2 << 20))) return;
  using log = captureLog();
  const device = `diskfull2_${id}`;
  await using link = await dbLink(db, dataDir);
  let collector: Collector | undefined;
  const pub = await connectClient(broker.url, `pub-diskfull2-${id}`);
  try {
    // About 300 KiB left for the journal; the disk stays this full until the very end.
    const filler = fillDisk(journalDir, 300 << 10);
    collector = await startCollector(link.db, config, { ...TUNING, journalDir });
    let c = collector;
    await waitFor("the subscription", () => c.stats().mqttConnected);
    link.goDown();
    const total = 6000;
    await publishReadings(pub, { device, from: 0, to: total });
    const ackedFirst = await waitForIntakeToStop(() => c);
    ok(ackedFirst > 500 && ackedFirst < total, `acknowledged ${ackedFirst} on a full disk`);

    // A restart on the full disk: the journal opens, nothing is lost or skipped.
    await collector.stop();
    collector = await startCollector(link.db, config, { ...TUNING, journalDir });
    c = collector;
    // Connected, but the session's first message waits for space: the intake holds at once.
    await waitFor("the second connection", () => {
      return (log.text().match(/Connected to the MQTT broker/g) ?? []).length >= 2;
    });
    const ackedSecond = await waitForIntakeToStop(() => c);

    // The database returns while the disk is still full: the journal drains, frees its own
    // space and the intake resumes by itself.
    const backAt = Date.now();
    link.comeBack();
    await waitFor("the intake to resume", () => c.stats().received > ackedSecond, {
      timeoutMs: 15_000,
    });
    const resumeMs = Date.now() - backAt;
    await waitFor(
      "every reading",
      async () => (await countReadings(db, device)).columnar >= total,
      {
        detail: async () => JSON.stringify({ ...c.stats(), ...(await countReadings(db, device)) }),
      },
    );
    // Then the space returns too, and the stream goes on.
    await Deno.remove(filler);
    await publishReadings(pub, { device, from: total, to: total + 500 });
    await waitFor("the readings after", async () => {
      return (await countReadings(db, device)).columnar >= total + 500;
    });
    const counts = await countReadings(db, device);
    const acked = ackedFirst + c.stats().received;
    console.log(
      `  2 MiB disk: published ${total + 500}, acknowledged ${acked} (${ackedFirst} before the ` +
        `restart), stored ${counts.columnar}; intake resumed ${resumeMs} ms after the database ` +
        "returned",
    );
    equal(counts.columnar, total + 500);
    equal(counts.co2Sum, sumTo(total + 500));
    equal(acked, total + 500, "each reading acknowledged once");
    // Said once per run (this process ran two collectors), with the path.
    const full = log.text().match(/No space left on the journal's disk[^\n]*/g) ?? [];
    equal(full.length, 2, log.text());
    for (const line of full) ok(line.includes(`path=${journalDir}`), line);
    equal(c.stats().quarantined, 0);
    ok(!/Damaged|kept aside/.test(log.text()), log.text());
  } finally {
    link.comeBack();
    await pub.endAsync();
    await collector?.stop();
    await unmount(journalDir);
  }
});

Deno.test("the collector process on a journal disk with almost no space left keeps storing every reading, then exits 0 on SIGTERM", async () => {
  await using db = Deno.env.get("DATABASE_URL") ? await withTestDb() : undefined;
  const broker = await testBroker();
  const dataDir = await collectorDataDir();
  const journalDir = new URL(`${dataDir}/journal/`, ROOT).pathname;
  const id = suffix();
  const device = `diskfullproc_${id}`;
  const clientId = `collector-diskfullproc-${id}`;
  let mounted = false;
  try {
    mounted = await mountOrSkip(journalDir, 2 << 20);
    if (!mounted) return;
    // 48 KiB left: the journal fills every few hundred readings and must free its own space.
    const filler = fillDisk(journalDir, 48 << 10);
    const c = spawnCollector({
      dbUrl: db?.url,
      db,
      dataDir,
      mqttUrl: broker.url,
      clientId,
      device,
    });
    await c.waitForLog(/Subscribed/);
    const pub = await connectClient(broker.url, `pub-diskfullproc-${id}`);
    const total = 3000;
    try {
      await publishReadings(pub, { device, from: 0, to: total, chunk: 100, pauseMs: 20 });
      await waitFor("every reading", async () => (await c.rows()) >= total, {
        timeoutMs: 120_000,
        detail: async () => `rows=${await c.rows()}\n${c.stderr()}`,
      });
    } finally {
      await pub.endAsync();
    }
    await Deno.remove(filler);
    c.kill("SIGTERM");
    equal((await c.status).code, 0, c.stderr());
    ok(!/Damaged|kept aside|Unexpected error/.test(c.stderr()), c.stderr());
    const received = Number(/Collector stopped received=(\d+)/.exec(c.stderr())?.[1]);
    let counts;
    if (db) {
      counts = await countReadings(db, device);
    } else {
      const pg = await openChildPglite(dataDir);
      counts = await countReadings(pg, device).finally(() => pg.close());
    }
    console.log(
      `  2 MiB disk, 48 KiB free: published ${total}, acknowledged ${received}, stored ` +
        `${counts.columnar}`,
    );
    const full = c.stderr().match(/No space left on the journal's disk[^\n]*/g) ?? [];
    equal(full.length, 1, c.stderr());
    ok(/path=\S*/.test(full[0]) && full[0].includes(`${dataDir}/journal`), full[0]);
    equal(counts.columnar, total);
    equal(counts.co2Sum, sumTo(total));
    equal(received, total, "each reading acknowledged once");
  } finally {
    if (mounted) await unmount(journalDir);
    await clearSession(broker.url, clientId);
    await broker.close();
    await removeDataDir(dataDir);
  }
});
