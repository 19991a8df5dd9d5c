import { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import { join } from "node:path";
import type { ResultStore } from "../mcp/deps.ts";
import { createResultStore, type ResultStoreOptions } from "./mod.ts";

const HOUR = 3_600_000;

async function tempStore(opts: Partial<ResultStoreOptions> = {}) {
  const dataDir = await Deno.makeTempDir({ prefix: "ambient-results-" });
  let now = Date.UTC(2025, 0, 1);
  const base = {
    dataDir,
    serverUrl: "http://127.0.0.1:8000",
    ttlH: 24,
    maxBytes: 10 * 1024 * 1024,
    now: () => now,
    ...opts,
  };
  const store = await createResultStore(base);
  return {
    store,
    dataDir,
    base,
    advance: (ms: number) => void (now += ms),
    reopen: () => createResultStore(base),
    [Symbol.asyncDispose]: () => Deno.remove(dataDir, { recursive: true }),
  };
}

function linkParams(url: string): { id: string; ext: "csv" | "png"; params: URLSearchParams } {
  const u = new URL(url);
  const m = /^\/files\/([^/]+)\.(csv|png)$/.exec(u.pathname)!;
  return { id: m[1], ext: m[2] as "csv" | "png", params: u.searchParams };
}

Deno.test("saveCsv() writes CSV with correct quoting, NULL apart from empty text, ISO dates and JSON", async () => {
  await using t = await tempStore();
  const saved = await t.store.saveCsv(["time", "note", "value", "meta", "ok"], [
    [new Date("2024-03-01T12:00:00.000Z"), 'say "hi", then\nleave', 1.5, { a: [1, 2] }, true],
    ["2024-03-02", "", null, null, false],
    [null, "café ✓", Number.NaN, [1, null], null],
  ]);
  equal(saved.rowCount, 3);
  const path = await t.store.csvPath(saved.queryId);
  equal(path, join(t.dataDir, "queries", `${saved.queryId}.csv`));
  const text = await Deno.readTextFile(path!);
  equal(
    text,
    "time,note,value,meta,ok\n" +
      '2024-03-01T12:00:00.000Z,"say ""hi"", then\nleave",1.5,"{""a"":[1,2]}",true\n' +
      '2024-03-02,"",,,false\n' +
      ',café ✓,NaN,"[1,null]",\n',
  );
  equal(saved.bytes, new TextEncoder().encode(text).length);
  match(saved.queryId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
});

Deno.test("a result and its link expire after QUERY_CACHE_TTL_H hours", async () => {
  await using t = await tempStore({ ttlH: 2 });
  const { queryId } = await t.store.saveCsv(["a"], [[1]]);
  const link = linkParams(await t.store.fileUrl(queryId, "csv"));
  equal(
    Number(link.params.get("exp")),
    Math.floor((Date.UTC(2025, 0, 1) + 2 * HOUR) / 1000),
  );
  t.advance(2 * HOUR - 1000);
  ok(await t.store.csvPath(queryId));
  ok(await t.store.verifyLink(link.id, link.ext, link.params));
  t.advance(1000);
  equal(await t.store.csvPath(queryId), undefined);
  equal(await t.store.verifyLink(link.id, link.ext, link.params), false);
  deepEqual(await t.store.list(), []);
  deepEqual(await Array.fromAsync(Deno.readDir(join(t.dataDir, "queries"))), []);
});

Deno.test("past the size budget the oldest results are evicted first, never the newest", async () => {
  const row = ["x".repeat(1000)];
  await using t = await tempStore({ maxBytes: 3500 });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    ids.push((await t.store.saveCsv(["c"], [row])).queryId);
    t.advance(1000);
  }
  // Each file is ~1 KB: the budget holds three, so the first one went.
  equal(await t.store.csvPath(ids[0]), undefined);
  for (const id of ids.slice(1)) ok(await t.store.csvPath(id));
  deepEqual((await t.store.list()).map((r) => r.queryId), ids.slice(1).reverse());
  const huge = await t.store.saveCsv(["c"], [["y".repeat(5000)]]);
  ok(await t.store.csvPath(huge.queryId), "a result larger than the budget is still kept");
  deepEqual((await t.store.list()).map((r) => r.queryId), [huge.queryId]);
});

Deno.test("a tampered, foreign or expired signature is refused", async () => {
  await using t = await tempStore();
  const a = await t.store.saveCsv(["a"], [[1]]);
  const b = await t.store.saveCsv(["a"], [[2]]);
  const link = linkParams(await t.store.fileUrl(a.queryId, "csv"));
  ok(await t.store.verifyLink(link.id, "csv", link.params));
  const sig = link.params.get("sig")!;
  const exp = link.params.get("exp")!;
  const flipped = (sig[0] === "A" ? "B" : "A") + sig.slice(1);
  const cases: [string, string, "csv" | "png", Record<string, string>][] = [
    ["flipped signature", a.queryId, "csv", { exp, sig: flipped }],
    ["other result's id", b.queryId, "csv", { exp, sig }],
    ["other extension", a.queryId, "png", { exp, sig }],
    ["later expiry", a.queryId, "csv", { exp: String(Number(exp) + 3600), sig }],
    ["no signature", a.queryId, "csv", { exp }],
    ["no expiry", a.queryId, "csv", { sig }],
    ["garbage signature", a.queryId, "csv", { exp, sig: "not base64!" }],
    ["truncated signature", a.queryId, "csv", { exp, sig: sig.slice(0, 20) }],
  ];
  for (const [why, id, ext, params] of cases) {
    equal(await t.store.verifyLink(id, ext, new URLSearchParams(params)), false, why);
  }
  t.advance(24 * HOUR);
  equal(await t.store.verifyLink(link.id, "csv", link.params), false, "expired");
});

Deno.test("ids that are not UUIDs never reach the filesystem", async () => {
  await using t = await tempStore();
  const { queryId } = await t.store.saveCsv(["a"], [[1]]);
  await Deno.writeTextFile(join(t.dataDir, "queries", "secret.csv"), "a\n1\n");
  const bad = [
    "../link_secret",
    "../../etc/passwd",
    `${queryId}/../${queryId}`,
    `${queryId}.csv`,
    "secret",
    "",
    "/etc/passwd",
    `${queryId.slice(0, -1)}%00`,
  ];
  for (const id of bad) {
    equal(await t.store.csvPath(id), undefined, id);
    equal(await t.store.filePath(id, "csv"), undefined, id);
    equal(await t.store.filePath(id, "png"), undefined, id);
    deepEqual(await t.store.remove(id), [], id);
    equal(await t.store.verifyLink(id, "csv", new URLSearchParams({ exp: "9", sig: "x" })), false);
    await rejects(() => t.store.fileUrl(id, "csv"), RangeError);
  }
  ok(await t.store.csvPath(queryId));
  ok(await t.store.csvPath(queryId.toUpperCase()), "upper-case spelling of a real id is accepted");
  equal(await t.store.filePath(queryId, "png"), undefined, "a CSV id is not a plot");
});

Deno.test("remove() deletes one result or all results and plots; list() is newest first", async () => {
  await using t = await tempStore();
  const a = await t.store.saveCsv(["a"], [[1], [2]]);
  t.advance(1000);
  const b = await t.store.saveCsv(["a"], [[3]]);
  const plot = await t.store.newPlot();
  await Deno.writeFile(plot.path, new Uint8Array([0x89, 0x50, 0x4e, 0x47]));
  equal(await t.store.filePath(plot.plotId, "png"), plot.path);
  match(await t.store.fileUrl(plot.plotId, "png"), /\/files\/[0-9a-f-]{36}\.png\?exp=\d+&sig=/);
  deepEqual(
    (await t.store.list()).map((r) => [r.queryId, r.rowCount]),
    [[b.queryId, 1], [a.queryId, 2]],
  );
  deepEqual(await t.store.remove(a.queryId), [a.queryId]);
  equal(await t.store.csvPath(a.queryId), undefined);
  deepEqual(await t.store.remove(a.queryId), [], "removing twice removes nothing");
  deepEqual(await t.store.remove(), [b.queryId, plot.plotId]);
  deepEqual(await t.store.list(), []);
  deepEqual(await Array.fromAsync(Deno.readDir(join(t.dataDir, "queries"))), []);
  deepEqual(await Array.fromAsync(Deno.readDir(join(t.dataDir, "plots"))), []);
});

Deno.test("results and links survive a restart; interrupted writes are cleaned up", async () => {
  await using t = await tempStore();
  const saved = await t.store.saveCsv(["a"], [[1], [2]]);
  const url = await t.store.fileUrl(saved.queryId, "csv");
  const secret = await Deno.stat(join(t.dataDir, "link_secret"));
  equal(secret.mode! & 0o777, 0o600);
  const leftover = join(t.dataDir, "queries", `.${crypto.randomUUID()}.csv.tmp`);
  await Deno.writeTextFile(leftover, "a\n");
  const again: ResultStore = await t.reopen();
  const [entry] = await again.list();
  equal(entry.queryId, saved.queryId);
  equal(entry.rowCount, 2);
  equal(await again.fileUrl(saved.queryId, "csv"), url);
  const link = linkParams(url);
  ok(await again.verifyLink(link.id, link.ext, link.params));
  await rejects(() => Deno.stat(leftover), Deno.errors.NotFound);
});

Deno.test("each data folder signs with its own secret", async () => {
  await using a = await tempStore();
  await using b = await tempStore();
  const saved = await a.store.saveCsv(["a"], [[1]]);
  const link = linkParams(await a.store.fileUrl(saved.queryId, "csv"));
  const other = await b.store.saveCsv(["a"], [[1]]);
  const otherLink = linkParams(await b.store.fileUrl(other.queryId, "csv"));
  notEqual(link.params.get("sig"), otherLink.params.get("sig"));
  equal(await b.store.verifyLink(link.id, "csv", link.params), false);
});
