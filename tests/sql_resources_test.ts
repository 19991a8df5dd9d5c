// Resource bounds of the SQL tool: temporary files, runaway memory, denied server internals.
import { match, ok, rejects } from "node:assert/strict";
import postgres from "postgres";
import { withTestDb } from "../lib/db/testing.ts";
import { openPostgres } from "../lib/db/_postgres.ts";
import { QueryTimeout } from "../lib/db/mod.ts";
import { QueryFailed, runQuery, SqlRefused } from "../lib/sql/mod.ts";

const LIMITS = { timeoutMs: 10_000, maxRows: 1000, maxBytes: 1_000_000 };

/** Sorts ~40 MB of rows: spills to disk past work_mem. */
const SPILL =
  "select g, md5(g::text) || repeat('x', 200) as pad from generate_series(1, 200000) g " +
  "order by pad desc, g limit 5";

/** A recursive CTE doubling a jsonb value each step. */
const DOUBLING = "with recursive t(n, j) as (select 1, '[1,2,3,4,5,6,7,8]'::jsonb " +
  "union all select n + 1, j || j from t where n < 40) select n, length(j::text) from t " +
  "order by n desc limit 1";

Deno.test({
  name: "a query spilling past the temp-file limit is stopped with a clear message",
  // PGlite: temp_file_limit is left unset (see lib/sql/_resource_limits.ts).
  ignore: !Deno.env.get("DATABASE_URL"),
}, async () => {
  await using db = await withTestDb();
  const err = await rejects(
    runQuery(db, SPILL, { ...LIMITS, limits: { workMemMb: 1, tempFileMb: 1 } }),
    (e: unknown) => {
      ok(e instanceof QueryFailed, String(e));
      match(e.message, /53400/);
      match(e.message, /1 MB of temporary disk space/);
      return true;
    },
  );
  void err;
  // The same query fits in the default bounds.
  const res = await runQuery(db, SPILL, LIMITS);
  ok(res.rows.length === 5);
});

Deno.test("pg_control_* functions are refused", async () => {
  await using db = await withTestDb();
  for (
    const sql of [
      "select * from pg_control_system()",
      "select (pg_control_checkpoint()).redo_lsn",
      'select "PG_CONTROL_INIT"()',
      "select pg_catalog.pg_control_recovery()",
    ]
  ) {
    await rejects(runQuery(db, sql, LIMITS), (e: unknown) => {
      ok(e instanceof SqlRefused, `${sql}: ${e}`);
      match((e as Error).message, /control file/);
      return true;
    });
  }
});

async function rssAnonKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/^RssAnon:\s+(\d+) kB/m.exec(status)![1]);
}

Deno.test({
  name: "a jsonb-doubling recursive CTE is stopped with the backend's memory bounded",
  ignore: !Deno.env.get("DATABASE_URL"),
  async fn() {
    await using db = await withTestDb();
    const url = Deno.env.get("DATABASE_URL")!;
    // A second, privileged connection finds the backend and samples its memory.
    const admin = postgres(url, { max: 1, onnotice: () => {} });
    const [{ name: dbName }] = await db.sql<{ name: string }>`select current_database() as name`;
    let peakKb = 0;
    let watchedPeakKb = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        // The test database is fresh: its only active client backend runs the query.
        const rows = await admin`select pid from pg_stat_activity
          where datname = ${dbName} and backend_type = 'client backend' and state = 'active'
            and pid <> pg_backend_pid()`;
        for (const r of rows) {
          try {
            peakKb = Math.max(peakKb, await rssAnonKb(r.pid));
          } catch { /* backend gone */ }
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    try {
      // Temporary files unbounded here: only the memory watch can stop it.
      const started = performance.now();
      await rejects(
        runQuery(db, DOUBLING, {
          ...LIMITS,
          limits: { workMemMb: 64, tempFileMb: 100_000, maxMemoryMb: 200 },
        }),
        (e: unknown) => {
          ok(!(e instanceof QueryTimeout), "stopped by the memory watch, not the timeout");
          ok(e instanceof QueryFailed, String(e));
          match(e.message, /more than 200 MB of memory/);
          return true;
        },
      );
      ok(performance.now() - started < 9000);
      watchedPeakKb = peakKb;
      peakKb = 0;
      // With the default bounds the temp-file limit stops it first.
      await rejects(runQuery(db, DOUBLING, LIMITS), (e: unknown) => {
        ok(e instanceof QueryFailed, String(e));
        match(e.message, /53400|of memory on the database server/);
        return true;
      });
    } finally {
      sampling = false;
      await sampler;
      await admin.end();
    }
    ok(watchedPeakKb > 0 && peakKb > 0, "the backend was sampled");
    const mb = (kb: number) => Math.round(kb / 1024);
    console.log(
      `backend RssAnon peak: ${mb(watchedPeakKb)} MB (limit 200), ${mb(peakKb)} MB (defaults)`,
    );
    // Unbounded, the backend passes 1.5 GB before the 10 s timeout; one doubling step past the
    // limit is the most it may overshoot.
    ok(watchedPeakKb < 450 * 1024, `peak ${mb(watchedPeakKb)} MB with a 200 MB limit`);
    ok(peakKb < 600 * 1024, `peak ${mb(peakKb)} MB with the default limits`);
  },
});

Deno.test("the doubling CTE is stopped on the embedded database too, which keeps answering", {
  ignore: !!Deno.env.get("DATABASE_URL"),
}, async () => {
  // The embedded database as serve runs it: in a worker, killed and reopened at the timeout.
  await using db = await withTestDb({ killable: true });
  await rejects(runQuery(db, DOUBLING, { ...LIMITS, timeoutMs: 3000 }), (e: unknown) => {
    ok(e instanceof QueryTimeout || e instanceof QueryFailed, String(e));
    return true;
  });
  const res = await runQuery(db, "select 1 as n", LIMITS);
  ok(res.rows.length === 1);
});

Deno.test({
  name: "a login role that may not set temp_file_limit still runs queries; granted, it is bounded",
  ignore: !Deno.env.get("DATABASE_URL"),
  async fn() {
    await using db = await withTestDb();
    const role = `app_${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;
    await db.exec(`create role ${role} login; grant sensor_reader to ${role}`);
    const asRole = (u: string) => {
      const url = new URL(u);
      url.username = role;
      return url.toString();
    };
    try {
      const plain = openPostgres(asRole(db.url!), { max: 1 });
      try {
        // Not settable: the query runs under the server's own (here unlimited) setting.
        const res = await runQuery(plain, SPILL, {
          ...LIMITS,
          limits: { workMemMb: 1, tempFileMb: 1 },
        });
        ok(res.rows.length === 5);
      } finally {
        await plain.close();
      }
      await db.exec(`grant set on parameter temp_file_limit to ${role}`);
      const granted = openPostgres(asRole(db.url!), { max: 1 });
      try {
        await rejects(
          runQuery(granted, SPILL, { ...LIMITS, limits: { workMemMb: 1, tempFileMb: 1 } }),
          /temporary disk space/,
        );
      } finally {
        await granted.close();
      }
    } finally {
      await db.exec(
        `revoke set on parameter temp_file_limit from ${role}; drop owned by ${role}; drop role ${role}`,
      ).catch(() => {});
    }
  },
});
