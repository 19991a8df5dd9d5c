// A journal record that cannot be read (a disk error: a checksum or a length that does not match)
// is kept aside under DATA_DIR/journal/quarantine/, logged and counted, and every other record is
// stored. The collector runs as users run it: collector.ts under the `collect` permission set with
// DATABASE_URL, else the PGlite fixture.
import { deepStrictEqual as assertEquals, equal, match } from "node:assert/strict";
import { join } from "node:path";
import { withTestDb } from "../lib/db/testing.ts";
import { Journal } from "../lib/ingest/journal.ts";
import {
  clearSession,
  collectorDataDir,
  countReadings,
  openChildPglite,
  reading,
  removeDataDir,
  spawnCollector,
  suffix,
  sumTo,
  testBroker,
  waitFor,
} from "./fixtures/collector_harness.ts";

const ROOT = new URL("../", import.meta.url);

Deno.test("unreadable records in the middle of a journal segment are kept aside at the restart and every other record is stored once", async () => {
  await using db = Deno.env.get("DATABASE_URL") ? await withTestDb() : undefined;
  const broker = await testBroker();
  const dataDir = await collectorDataDir();
  const id = suffix();
  const device = `quarantine_${id}`;
  const clientId = `collector-quarantine-${id}`;
  const journalDir = new URL(`${dataDir}/journal/`, ROOT).pathname;
  try {
    // What a collector left in its journal before it stopped: 300 readings, none stored yet.
    const total = 300;
    const journal = Journal.open({ dir: journalDir, maxBytes: 1 << 30 });
    const ends: number[] = [];
    const enc = new TextEncoder();
    for (let i = 0; i < total; i++) {
      ends.push(journal.append({
        topic: `devices/${device}/sensors/scd30/data`,
        payload: enc.encode(reading(i)),
        receivedAt: Date.now(),
      }));
    }
    journal.close();
    // A disk error flips a byte of reading 100 and garbles the length of reading 200.
    const segment = join(journalDir, `${"0".repeat(20)}.seg`);
    const bytes = Deno.readFileSync(segment);
    const original = (i: number) => bytes.slice(ends[i - 1], ends[i]);
    const damaged100 = original(100);
    damaged100[30] ^= 0x55;
    bytes.set(damaged100, ends[99]);
    const damaged200 = original(200);
    new DataView(damaged200.buffer).setUint32(0, 0x7fffffff);
    bytes.set(damaged200, ends[199]);
    Deno.writeFileSync(segment, bytes);

    const c = spawnCollector({
      dbUrl: db?.url,
      db,
      dataDir,
      mqttUrl: broker.url,
      clientId,
      device,
    });
    // The PGlite fixture can take a minute to start on a busy machine.
    await waitFor("every readable record", async () => (await c.rows()) >= total - 2, {
      timeoutMs: 150_000,
      detail: async () => `rows=${await c.rows()}\n${c.stderr()}`,
    });
    await c.waitForLog(/Subscribed/);
    c.kill("SIGTERM");
    equal((await c.status).code, 0, c.stderr());

    const kept = c.stderr().match(/Unreadable journal record kept aside[^\n]*/g) ?? [];
    equal(kept.length, 2, c.stderr());
    match(kept[0], /quarantine\/0+\d+\.bad/);
    const folder = join(journalDir, "quarantine");
    const files = [...Deno.readDirSync(folder)].map((e) => e.name).sort();
    assertEquals(files, [ends[99], ends[199]].map((o) => `${String(o).padStart(20, "0")}.bad`));
    assertEquals(Deno.readFileSync(join(folder, files[0])), damaged100);
    assertEquals(Deno.readFileSync(join(folder, files[1])), damaged200);

    let counts;
    if (db) {
      counts = await countReadings(db, device);
    } else {
      const pg = await openChildPglite(dataDir);
      counts = await countReadings(pg, device).finally(() => pg.close());
    }
    assertEquals(counts, {
      columnar: total - 2,
      flexible: 3 * (total - 2),
      co2Sum: sumTo(total) - 100 - 200,
    });
  } finally {
    await clearSession(broker.url, clientId);
    await broker.close();
    await removeDataDir(dataDir);
  }
});
