// A database that stops answering in the middle of a write while the collector is stopping: the
// stop ends at its deadline (not the 120 s write timeout), nothing is rejected for it, and the
// journal keeps the batch for the next start, which stores it once.
import { equal, ok } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import { createBatchWriter, Journal, startCollector } from "../lib/ingest/mod.ts";
import type { BatchWriter } from "../lib/ingest/mod.ts";
import {
  collectorScene,
  connectClient,
  countReadings,
  publishReadings,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";
import { join } from "node:path";

Deno.test("a stop while a write hangs ends at the stop timeout, rejects nothing and keeps the batch in the journal", async () => {
  await using db = await withTestDb();
  await using scene = await collectorScene("slowdb");
  const { broker, dataDir, id, config } = scene;
  const device = `slowdb_${id}`;
  const real = createBatchWriter(db, { layouts: config.layouts });
  let hang = false;
  const writer: BatchWriter = {
    write: (batch) => hang ? new Promise<void>(() => {}) : real.write(batch),
  };
  const collector = await startCollector(db, config, {
    flushIntervalMs: 20,
    stopTimeoutMs: 1500,
    writer,
  });
  const pub = await connectClient(broker.url, `pub-slowdb-${id}`);
  const total = 300;
  try {
    await waitFor("the subscription", () => collector.stats().mqttConnected);
    await publishReadings(pub, { device, from: 0, to: 100 });
    await waitFor(
      "the first readings",
      async () => (await countReadings(db, device)).columnar === 100,
    );
    hang = true; // the database accepts the next write and never answers
    await publishReadings(pub, { device, from: 100, to: total });
    await waitFor("the rest journaled", () => collector.stats().received >= total);
    const started = Date.now();
    await collector.stop();
    const stopMs = Date.now() - started;
    ok(stopMs < 10_000, `stop took ${stopMs} ms`);
    equal(collector.stats().rejected, 0);
  } finally {
    await pub.endAsync();
    await collector.stop();
  }
  const [r] = await db.sql<{ n: number }>`
    select count(*)::int as n from rejected_messages where topic like ${"%" + id + "%"}`;
  equal(r.n, 0, "nothing rejected for a slow database");
  const journal = Journal.open({ dir: join(dataDir, "journal"), maxBytes: 1 << 30 });
  const pending = journal.read(journal.committed, 10_000).length;
  journal.close();
  equal(pending, total - 100, "the unanswered batch is still in the journal");

  // The next start stores it, once.
  const again = await startCollector(db, config, { flushIntervalMs: 20 });
  try {
    await waitFor("the rest", async () => (await countReadings(db, device)).columnar >= total);
    const counts = await countReadings(db, device);
    equal(counts.columnar, total);
    equal(counts.co2Sum, sumTo(total));
  } finally {
    await again.stop();
  }
});
