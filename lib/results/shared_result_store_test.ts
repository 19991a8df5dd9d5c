// The PostgreSQL result store shared by server instances. Needs DATABASE_URL (the embedded stack
// keeps results on disk, see result_store_test.ts).
import { deepEqual, equal, notEqual, ok, rejects } from "node:assert/strict";
import { type Db, openDb } from "../db/mod.ts";
import { type TestDb, withTestDb } from "../db/testing.ts";
import type { ResultStore } from "../mcp/deps.ts";
import { CHUNK_BYTES } from "./_db_chunks.ts";
import { createResultStore, createSharedResultStore, ResultGone } from "./mod.ts";

const HOUR = 3_600_000;
const shared = Deno.env.get("DATABASE_URL") !== undefined;
if (!shared) {
  console.log(
    "  SKIPPED shared result store tests: they need PostgreSQL; set DATABASE_URL to run them",
  );
}

/** Two "instances": each its own connection pool and DATA_DIR, on one test database. */
async function twoInstances(
  opts: { maxBytes?: number; ttlH?: number; linkSecret?: string } = {},
) {
  const db = await withTestDb();
  let now = Date.UTC(2025, 0, 1);
  const dirs: string[] = [];
  const pools: Db[] = [];
  const open = async (o: { linkSecret?: string } = {}) => {
    const dataDir = await Deno.makeTempDir({ prefix: "ambient-shared-" });
    dirs.push(dataDir);
    const pool = await openDb({ databaseUrl: db.url, dataDir, max: 4 });
    pools.push(pool);
    return await createSharedResultStore({
      db: pool,
      dataDir,
      serverUrl: "http://127.0.0.1:8000",
      ttlH: opts.ttlH ?? 24,
      maxBytes: opts.maxBytes ?? 100 * 1024 * 1024,
      linkSecret: o.linkSecret ?? opts.linkSecret,
      now: () => now,
    });
  };
  const a = await open();
  const b = await open();
  return {
    db,
    a,
    b,
    open,
    advance: (ms: number) => void (now += ms),
    async [Symbol.asyncDispose]() {
      for (const p of pools) await p.close();
      await db[Symbol.asyncDispose]();
      for (const d of dirs) await Deno.remove(d, { recursive: true });
    },
  };
}

async function readAll(store: ResultStore, id: string, ext: "csv" | "png"): Promise<Uint8Array> {
  const file = await store.openFile(id, ext);
  ok(file, `${id}.${ext} is served`);
  const bytes = new Uint8Array(await new Response(file.body).arrayBuffer());
  equal(bytes.length, file.size);
  return bytes;
}

function linkParams(url: string) {
  const u = new URL(url);
  const m = /^\/files\/([^/]+)\.(csv|png)$/.exec(u.pathname)!;
  return { id: m[1], ext: m[2] as "csv" | "png", params: u.searchParams };
}

async function counts(db: TestDb): Promise<{ files: number; chunks: number; bytes: number }> {
  const [r] = await db.sql<{ files: number; chunks: number; bytes: number }>`
    select (select count(*)::int from result_files) as files,
           (select count(*)::int from result_chunks) as chunks,
           (select coalesce(sum(bytes), 0)::int8 from result_files where state = 'ready') as bytes`;
  return r;
}

const rows = (n: number, width: number) =>
  Array.from({ length: n }, (_, i) => [i, "x".repeat(width), new Date(Date.UTC(2025, 0, 1, 0, i))]);

Deno.test({
  name: "a result saved by one instance is read whole by another, with the same CSV as on disk",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances();
    const data = rows(3000, 300); // ~1 MB: several chunks
    const saved = await t.a.saveCsv(["i", "text", "time"], data);
    equal(saved.rowCount, 3000);
    ok(saved.bytes > 3 * CHUNK_BYTES);
    const [{ chunks }] = await t.db.sql<{ chunks: number }>`
      select count(*)::int as chunks from result_chunks where result_id = ${saved.queryId}`;
    equal(chunks, Math.ceil(saved.bytes / CHUNK_BYTES));

    const dir = await Deno.makeTempDir();
    try {
      const disk = await createResultStore({
        dataDir: dir,
        serverUrl: "http://x",
        ttlH: 1,
        maxBytes: 1e9,
      });
      const onDisk = await disk.saveCsv(["i", "text", "time"], data);
      const expected = await Deno.readFile((await disk.csvPath(onDisk.queryId))!);
      deepEqual(await readAll(t.b, saved.queryId, "csv"), expected);
      // The sandbox's local copy, written from the chunks on the other instance.
      const path = await t.b.csvPath(saved.queryId);
      ok(path);
      deepEqual(await Deno.readFile(path), expected);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    // A link signed by one instance opens on the other.
    const link = linkParams(await t.a.fileUrl(saved.queryId, "csv"));
    ok(await t.b.verifyLink(link.id, link.ext, link.params));
    equal(await t.b.fileUrl(saved.queryId, "csv"), await t.a.fileUrl(saved.queryId, "csv"));
    deepEqual((await t.b.list()).map((r) => [r.queryId, r.rowCount]), [[saved.queryId, 3000]]);
  },
});

Deno.test({
  name: "plots stored by one instance are served by another; remove() on one clears both",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances();
    const q = await t.a.saveCsv(["a"], [[1]]);
    const plot = await t.a.newPlot();
    const png = Uint8Array.from({ length: CHUNK_BYTES + 1000 }, (_, i) => (i * 7919) % 251);
    await Deno.writeFile(plot.path, png);
    equal(await t.b.openFile(plot.plotId, "png"), undefined, "invisible before storePlot");
    await t.a.storePlot(plot.plotId);
    deepEqual(await readAll(t.b, plot.plotId, "png"), png);
    equal(await t.b.openFile(plot.plotId, "csv"), undefined, "a plot id is not a CSV");
    deepEqual(await t.b.remove(), [q.queryId, plot.plotId]);
    equal(await t.a.openFile(q.queryId, "csv"), undefined);
    equal(await t.a.csvPath(q.queryId), undefined);
    deepEqual(await counts(t.db), { files: 0, chunks: 0, bytes: 0 });
  },
});

Deno.test({
  name: "the link secret is created once when many instances start at once; LINK_SECRET wins",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances();
    const more = await Promise.all(Array.from({ length: 6 }, () => t.open()));
    const [{ n }] = await t.db.sql<
      { n: number }
    >`select count(*)::int as n from result_link_secret`;
    equal(n, 1);
    const q = await t.a.saveCsv(["a"], [[1]]);
    const url = await t.a.fileUrl(q.queryId, "csv");
    for (const s of [t.b, ...more]) equal(await s.fileUrl(q.queryId, "csv"), url);
    const secret = "s".repeat(40);
    const x = await t.open({ linkSecret: secret });
    const y = await t.open({ linkSecret: secret });
    const signed = await x.fileUrl(q.queryId, "csv");
    notEqual(signed, url);
    equal(await y.fileUrl(q.queryId, "csv"), signed);
    const link = linkParams(signed);
    equal(await t.a.verifyLink(link.id, link.ext, link.params), false);
    ok(await y.verifyLink(link.id, link.ext, link.params));
  },
});

Deno.test({
  name: "shared results and their links expire after QUERY_CACHE_TTL_H and their rows are deleted",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances({ ttlH: 2 });
    const q = await t.a.saveCsv(["c"], rows(2000, 200));
    const link = linkParams(await t.a.fileUrl(q.queryId, "csv"));
    t.advance(2 * HOUR - 1000);
    ok(await t.b.openFile(q.queryId, "csv"));
    ok(await t.b.verifyLink(link.id, link.ext, link.params));
    t.advance(1000);
    equal(await t.b.openFile(q.queryId, "csv"), undefined);
    equal(await t.b.verifyLink(link.id, link.ext, link.params), false);
    await rejects(() => t.b.fileUrl(q.queryId, "csv"), RangeError);
    deepEqual(await t.b.list(), []);
    deepEqual(await counts(t.db), { files: 0, chunks: 0, bytes: 0 });
  },
});

Deno.test({
  name: "two instances evicting at once: no errors, the budget holds, the newest is kept",
  ignore: !shared,
  fn: async () => {
    const budget = 400_000;
    await using t = await twoInstances({ maxBytes: budget });
    const saved: string[] = [];
    // Each ~100 KB; both instances save (and sweep) concurrently, 12 rounds of 2 × 3.
    for (let round = 0; round < 12; round++) {
      const batch = await Promise.all(
        [t.a, t.b, t.a, t.b, t.a, t.b].map((s) => s.saveCsv(["c"], rows(300, 320))),
      );
      saved.push(...batch.map((r) => r.queryId));
      t.advance(1000);
    }
    const c = await counts(t.db);
    ok(c.bytes <= budget, `${c.bytes} bytes kept, budget ${budget}`);
    ok(c.files >= 3, `${c.files} results kept: the budget holds about four`);
    // No chunk without its result, no result half deleted.
    const [{ orphans, states }] = await t.db.sql<{ orphans: number; states: string[] }>`
      select (select count(*)::int from result_chunks c
              where not exists (select 1 from result_files f where f.id = c.result_id)) as orphans,
             (select coalesce(array_agg(distinct state), '{}') from result_files) as states`;
    equal(orphans, 0);
    deepEqual(states, ["ready"]);
    const kept = (await t.a.list()).map((r) => r.queryId);
    equal(kept.length, c.files);
    for (const id of kept) ok(saved.slice(-12).includes(id), "only recent results are kept");
    // A result larger than the budget is kept alone.
    const huge = await t.b.saveCsv(["c"], rows(1500, 320));
    deepEqual((await t.a.list()).map((r) => r.queryId), [huge.queryId]);
  },
});

Deno.test({
  name: "a result whose rows fail half way is removed again, chunks and all",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances();
    function* failing() {
      for (let i = 0; i < 3000; i++) yield [i, "x".repeat(300)];
      throw new Error("the cursor broke");
    }
    await rejects(() => t.a.saveCsv(["i", "t"], failing()), /the cursor broke/);
    deepEqual(await counts(t.db), { files: 0, chunks: 0, bytes: 0 });
    deepEqual(await t.b.list(), []);
  },
});

Deno.test({
  name: "a result removed while it is read ends the stream with ResultGone, never a short file",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances();
    const q = await t.a.saveCsv(["c"], rows(4000, 300));
    const file = await t.b.openFile(q.queryId, "csv");
    ok(file);
    const reader = file.body.getReader();
    const first = await reader.read();
    ok(first.value && first.value.length === CHUNK_BYTES);
    deepEqual(await t.a.remove(q.queryId), [q.queryId]);
    await rejects(async () => {
      while (!(await reader.read()).done) {
        // keep reading until the store notices
      }
    }, ResultGone);
    equal(await t.b.csvPath(q.queryId), undefined);
  },
});

Deno.test({
  name: "the SQL tool's role cannot read stored results or the link secret",
  ignore: !shared,
  fn: async () => {
    await using t = await twoInstances();
    await t.a.saveCsv(["secret"], [["other user's data"]]);
    for (
      const sql of [
        "select * from result_files",
        "select * from result_chunks",
        "select * from result_link_secret",
        "select * from result_sweep(now(), 0)",
      ]
    ) {
      const error = await t.db.transaction(async (tx) => {
        await tx.exec("set local role sensor_reader");
        await tx.query(sql);
      }).then(() => undefined, (e) => e);
      equal((error as { code?: string })?.code, "42501", `refused: ${sql}`);
    }
  },
});
