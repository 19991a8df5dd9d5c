import { deepStrictEqual as assertEquals, ok, rejects } from "node:assert/strict";
import { withTestDb } from "./testing.ts";
import { QueryTimeout } from "./query_timeout.ts";

Deno.test("a transaction over its timeoutMs is cancelled and the database keeps its data", async () => {
  await using db = await withTestDb({ killable: true });
  await db.sql`insert into devices (device_id) values ('kept')`;
  const started = performance.now();
  await rejects(
    () =>
      db.transaction(async (tx) => {
        await tx.query("select count(*) from generate_series(1, 2000000000)");
      }, { timeoutMs: 500 }),
    (err: unknown) => err instanceof QueryTimeout && err.timeoutMs === 500,
  );
  const elapsed = performance.now() - started;
  ok(elapsed < 15_000, `cancel took ${elapsed} ms`);
  const rows = await db.sql<{ device_id: string }>`select device_id from devices`;
  assertEquals(rows.map((r) => r.device_id), ["kept"]);
  await db.sql`insert into devices (device_id) values ('after')`;
  const n = await db.sql<{ n: number }>`select count(*)::int as n from devices`;
  assertEquals(n[0].n, 2);
});

Deno.test("a transaction within its timeoutMs commits normally", async () => {
  await using db = await withTestDb({ killable: true });
  const out = await db.transaction(async (tx) => {
    await tx.sql`insert into devices (device_id) values ('quick')`;
    return (await tx.sql<{ n: number }>`select count(*)::int as n from devices`)[0].n;
  }, { timeoutMs: 5_000 });
  assertEquals(out, 1);
  await rejects(() =>
    db.transaction(async (tx) => {
      await tx.sql`insert into devices (device_id) values ('undone')`;
      throw new Error("boom");
    }, { timeoutMs: 5_000 })
  );
  const rows = await db.sql<{ device_id: string }>`select device_id from devices order by 1`;
  assertEquals(rows.map((r) => r.device_id), ["quick"]);
});

Deno.test("queries issued while a transaction runs wait for it instead of joining it", async () => {
  await using db = await withTestDb({ killable: true });
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const tx = db.transaction(async (t) => {
    await t.sql`insert into devices (device_id) values ('in_tx')`;
    await gate;
    throw new Error("roll back");
  });
  const outside = db.sql`insert into devices (device_id) values ('outside')`;
  release();
  await rejects(() => tx, /roll back/);
  await outside;
  const rows = await db.sql<{ device_id: string }>`select device_id from devices order by 1`;
  assertEquals(rows.map((r) => r.device_id), ["outside"]);
});
