import { deepEqual, equal, match, notEqual, ok, rejects } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { loadServeConfig } from "../lib/config/mod.ts";
import { ident, type Queryable } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import type { ToolDeps } from "../lib/mcp/deps.ts";
import { registerClearQueryCacheTool } from "../lib/mcp/tools/clear_query_cache.ts";
import { registerExecuteSqlQueryTool } from "../lib/mcp/tools/execute_sql_query.ts";
import { createResultStore } from "../lib/results/mod.ts";
import { QUERY_SLOTS, QueryBusy, QueryFailed, runQuery } from "../lib/sql/mod.ts";
import type { Db } from "../lib/db/mod.ts";

const SEED = `
  insert into devices (device_id, device_name, location, status) values
    ('d1', 'Kitchen, "main"', 'kitchen', 'online'),
    ('d2', 'Office', 'office', 'online'),
    ('d3', 'Spare', null, 'unknown');
  insert into sensors (sensor_id, device_id, sensor_type, location) values
    (1, 'd1', 'scd30', 'kitchen'), (2, 'd1', 'bmp280', 'kitchen'), (3, 'd2', 'scd30', 'office');
  insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
    select timestamptz '2024-01-01 00:00:00+00' + h * interval '1 hour', s,
      400 + h * 10 + s, 20 + h / 10.0, 40 + s
    from generate_series(0, 23) h, (values (1), (3)) v(s);
  insert into bmp280_measurements (time, sensor_id, pressure, temperature, humidity)
    select timestamptz '2024-01-01 00:00:00+00' + h * interval '1 hour', 2, 1000 + h, 21, 45
    from generate_series(0, 23) h;
  insert into measurements (time, sensor_id, metric_type, value)
    select time, sensor_id, 'co2', co2 from scd30_measurements where sensor_id = 1
    union all
    select time, sensor_id, 'temperature', temperature from scd30_measurements where sensor_id = 1;
  insert into device_events (time, device_id, kind, payload) values
    ('2024-01-01 00:00:00+00', 'd1', 'capabilities', '{"fw":"1.2","rssi":-60}'),
    ('2024-01-01 01:00:00+00', 'd2', 'capabilities', '{"fw": "1.3", "rssi": -70}'),
    ('2024-01-01 02:00:00+00', 'd2', 'status', '"online"');
`;

type Content = { type: string; text?: string; uri?: string; mimeType?: string; name?: string }[];
interface Structured {
  query_id: string;
  row_count: number;
  columns: { name: string; type: string }[];
  truncated: boolean;
  preview: unknown[][];
  csv_url: string;
}

async function setup(env: Record<string, string> = {}) {
  const db = await withTestDb({ killable: true });
  await db.exec(SEED);
  const dataDir = await Deno.makeTempDir({ prefix: "ambient-sql-tool-" });
  const config = loadServeConfig({
    DATA_DIR: dataDir,
    QUERY_TIMEOUT_S: "2",
    QUERY_MAX_ROWS: "50",
    ...env,
  });
  const results = await createResultStore({
    dataDir,
    serverUrl: config.serverUrl,
    ttlH: config.query.cacheTtlH,
    maxBytes: config.query.cacheMaxBytes,
  });
  const deps: ToolDeps = { db, config, results };
  const server = new McpServer({ name: "test", version: "0" });
  registerExecuteSqlQueryTool(server, deps);
  registerClearQueryCacheTool(server, deps);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "c", version: "0" });
  await Promise.all([server.connect(a), client.connect(b)]);
  await client.listTools(); // lets the client validate structured output against outputSchema
  const call = async (sql: string) => {
    const r = await client.callTool({ name: "execute_sql_query", arguments: { sql } });
    const content = r.content as Content;
    return {
      isError: r.isError === true,
      text: content[0]?.text ?? "",
      content,
      data: r.structuredContent as Structured | undefined,
    };
  };
  return {
    db,
    results,
    client,
    call,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
      await db[Symbol.asyncDispose]();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/**
 * A fingerprint of everything a hostile query could change: every table's rows, the tables,
 * columns, functions and sequences of the schema, large objects, and our roles.
 */
type Fixture = Awaited<ReturnType<typeof setup>>;

async function digest(db: Queryable): Promise<string> {
  const tables = await db.sql<{ name: string }>`
    select c.relname as name from pg_class c
    where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p') order by 1`;
  const parts: string[] = [];
  for (const { name } of tables) {
    const [row] = await db.sql<{ n: number; md5: string }>`
      select count(*)::int as n, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as md5
      from ${ident(name)} t`;
    parts.push(`${name}:${row.n}:${row.md5}`);
  }
  const catalog = await db.sql<{ part: string }>`
    select 'col:' || c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod)
      as part
    from pg_attribute a join pg_class c on c.oid = a.attrelid
    where c.relnamespace = 'public'::regnamespace and a.attnum > 0 and not a.attisdropped
    union all
    select 'fn:' || p.oid::regprocedure::text from pg_proc p
    where p.pronamespace = 'public'::regnamespace
    union all
    select 'seq:' || sequencename || ':' || coalesce(last_value::text, '-') from pg_sequences
    union all
    select 'lo:' || count(*)::text from pg_largeobject_metadata
    union all
    select 'role:' || rolname || ':' || rolsuper || rolcanlogin || rolcreaterole || rolinherit
    from pg_roles where rolname in ('sensor_reader', current_user)
    union all
    select 'member:' || r.rolname || '>' || m.rolname from pg_auth_members am
    join pg_roles r on r.oid = am.roleid join pg_roles m on m.oid = am.member
    where r.rolname = 'sensor_reader'
    union all
    select 'grant:' || table_name || ':' || privilege_type
    from information_schema.role_table_grants where grantee = 'sensor_reader'
    order by 1`;
  return [...parts, ...catalog.map((r) => r.part)].join("\n");
}

/** Hostile input from the issue, each with the words its refusal must contain. */
const HOSTILE: [string, RegExp][] = [
  ["COMMIT; DROP TABLE devices;", /rule: one-statement[\s\S]*one at a time/],
  ["ROLLBACK; DELETE FROM scd30_measurements", /rule: one-statement/],
  ["ROLLBACK", /rule: statement-kind[\s\S]*always rolled back/],
  ["DROP TABLE devices", /rule: statement-kind/],
  ["with gone as (delete from devices returning *) select * from gone", /rule: data-modifying/],
  [
    "with x as (insert into devices (device_id) values ('evil') returning 1) select * from x",
    /rule: data-modifying/,
  ],
  ["select * into stolen from devices", /rule: select-into/],
  ["select * from devices for update", /rule: locking[\s\S]*FOR UPDATE locks rows/],
  ["select pg_sleep(30)", /rule: denied-function[\s\S]*pg_sleep is not allowed/],
  ["select pg_catalog.pg_sleep(30)", /pg_sleep is not allowed/],
  ['select "pg_sleep"(30)', /pg_sleep is not allowed/],
  ["select * from pg_sleep(30)", /pg_sleep is not allowed/],
  ["select (30::float8).pg_sleep", /calls the function pg_sleep/],
  ["select pg_read_file('/etc/passwd')", /pg_read_file is not allowed/],
  ["select lo_import('/etc/passwd')", /lo_import is not allowed/],
  ["select lo_export(1, '/tmp/ambient-pwned')", /lo_export is not allowed/],
  ["select * from dblink('dbname=postgres', 'drop table devices') as t(x int)", /dblink/],
  ["select set_config('transaction_read_only', 'off', true)", /set_config is not allowed/],
  ["DO $$ begin drop table devices; end $$", /rule: statement-kind[\s\S]*DO blocks/],
  ["COPY devices TO PROGRAM 'touch /tmp/ambient-pwned'", /rule: statement-kind[\s\S]*COPY/],
  ["SET ROLE postgres", /rule: statement-kind[\s\S]*SET/],
  ["select pg_terminate_backend(pg_backend_pid())", /pg_terminate_backend is not allowed/],
  ["select nextval('rejected_messages_id_seq')", /nextval is not allowed/],
  ["select 1 /* ; */ ; delete from devices", /rule: one-statement/],
  ["select 1 -- \n; delete from devices", /rule: one-statement/],
  ["select $x$ ; $x$; delete from devices", /rule: one-statement/],
  ['select U&"pg\\005fsleep"(5)', /pg_sleep is not allowed/],
  ["", /rule: empty/],
  ["  \n\t ", /rule: empty/],
  ["/* only a comment */", /rule: empty/],
  // Passes the guard; the sensor_reader role stops it.
  ["select * from rejected_messages", /42501[\s\S]*permission denied[\s\S]*sensor_reader/],
  // Passes the guard; the time limit stops it, or the temporary-file limit when the function
  // scans spill to disk faster than 2 s pass.
  [
    "select count(*) from generate_series(1, 1000000000) a, generate_series(1, 1000000000) b",
    /2 s limit[\s\S]*cancelled|more than the \d+ MB of temporary disk space/,
  ],
];

async function refusesHostileSql(t: Fixture) {
  const before = await digest(t.db);
  for (const [sql, reason] of HOSTILE) {
    const r = await t.call(sql);
    equal(r.isError, true, `${JSON.stringify(sql)} was not refused: ${r.text}`);
    match(r.text, reason, sql);
    ok(!/\bat .*\.ts:\d+|postgres:\/\/|\/work\//.test(r.text), `leaks internals: ${r.text}`);
  }
  equal(await digest(t.db), before);
  // The server still answers, and the session did not keep any role or setting.
  const ok1 = await t.call(
    "select count(*) as n, current_user as who, current_setting('transaction_read_only') as ro from devices",
  );
  equal(ok1.isError, false, ok1.text);
  deepEqual(ok1.data!.preview, [[3, "sensor_reader", "on"]], "read-only, as sensor_reader");
  if (t.db.kind === "postgres") {
    const limit = await t.call("select current_setting('statement_timeout') as st");
    deepEqual(limit.data!.preview, [["2s"]]);
  }
  const [who] = await t.db.sql<{ u: string; ro: string }>`
    select current_user as u, current_setting('transaction_read_only') as ro`;
  notEqual(who.u, "sensor_reader");
  equal(who.ro, "off");
}

/** Analytic SQL an assistant writes, with the row count it must return on the seed. */
const VALID: [string, number][] = [
  [
    "select sensor_id, time, co2, avg(co2) over (partition by sensor_id order by time rows between 2 preceding and current row) as co2_avg3 from scd30_measurements",
    48,
  ],
  [
    "select sensor_id, count(*) filter (where co2 > 500) as high, count(*) as n from scd30_measurements group by sensor_id",
    2,
  ],
  ["select percentile_cont(0.5) within group (order by co2) as median from scd30_measurements", 1],
  [
    "select date_bin('6 hours', time, timestamptz '2024-01-01') as bucket, avg(co2) as co2 from scd30_measurements group by 1 order by 1",
    4,
  ],
  [
    "select distinct on (sensor_id) sensor_id, time, co2 from scd30_measurements order by sensor_id, time desc",
    2,
  ],
  [
    "select device_id, payload->>'fw' as fw, (payload->'rssi')::int as rssi from device_events where payload ? 'fw'",
    2,
  ],
  [
    "select d.device_id, s.sensor_type, count(*) from sensors s join devices d using (device_id) group by rollup (d.device_id, s.sensor_type)",
    6,
  ],
  ["select sensor_type, location, count(*) from sensors group by cube (sensor_type, location)", 8],
  [
    "select sensor_id, metric_type, count(*) from measurements group by grouping sets ((sensor_id), (metric_type), ())",
    4,
  ],
  [
    "with hourly as (select date_trunc('hour', time) as h, avg(co2) as c from scd30_measurements group by 1) select count(*) from hourly",
    1,
  ],
  ["values (1, 'a'), (2, 'b')", 2],
  ["table metrics", 6],
  [
    "select d.device_id, l.time from devices d left join lateral (select m.time from scd30_measurements m join sensors s using (sensor_id) where s.device_id = d.device_id order by m.time desc limit 1) l on true",
    3,
  ],
  ["select g from generate_series(1, 10) g", 10],
  ["select device_id from devices union select device_id from sensors", 3],
  ["select sensor_id from scd30_measurements except select sensor_id from measurements", 1],
  ["select * from devices; -- every device", 3],
  ["select 'it''s; -- no comment' as s, $q$ ; drop table devices $q$ as t", 1],
  ["select unit from metrics where unit = '°C'", 2],
  [
    "select count(*) from scd30_measurements c join measurements m on m.sensor_id = c.sensor_id and m.time = c.time and m.metric_type = 'co2'",
    1,
  ],
];

async function runsAnalyticSql(t: Fixture) {
  for (const [sql, rows] of VALID) {
    const r = await t.call(sql);
    equal(r.isError, false, `${sql}: ${r.text}`);
    equal(r.data!.row_count, rows, sql);
    equal(r.data!.truncated, false, sql);
    equal(r.data!.preview.length, Math.min(rows, 20), sql);
  }
  const plan = await t.call(
    "explain (analyze, costs off) select count(*) from scd30_measurements where sensor_id = 1",
  );
  equal(plan.isError, false, plan.text);
  deepEqual(plan.data!.columns, [{ name: "QUERY PLAN", type: "text" }]);
  match(plan.text, /Scan[\s\S]*scd30_measurements/);
}

async function returnsTypesPreviewAndLinks(t: Fixture) {
  const r = await t.call(
    "select time, sensor_id, co2, device_id, metadata, time::date as day, 1.50::numeric as n, repeat('x', 500) as long from scd30_measurements join sensors using (sensor_id) order by time, sensor_id",
  );
  equal(r.isError, false, r.text);
  const s = r.data!;
  deepEqual(s.columns, [
    { name: "time", type: "timestamptz" },
    { name: "sensor_id", type: "int4" },
    { name: "co2", type: "float8" },
    { name: "device_id", type: "text" },
    { name: "metadata", type: "jsonb" },
    { name: "day", type: "date" },
    { name: "n", type: "numeric" },
    { name: "long", type: "text" },
  ]);
  equal(s.row_count, 48);
  equal(s.preview.length, 20);
  deepEqual(s.preview[0].slice(0, 7), [
    "2024-01-01T00:00:00.000Z",
    1,
    401,
    "d1",
    "{}",
    "2024-01-01",
    "1.50",
  ]);
  const long = s.preview[0][7] as string;
  ok(long.length <= 60 && long.endsWith("…"), "long values are shortened in the preview");
  match(s.csv_url, /^http:\/\/127\.0\.0\.1:8000\/files\/[0-9a-f-]{36}\.csv\?exp=\d+&sig=[\w-]+$/);
  const u = new URL(s.csv_url);
  ok(await t.results.verifyLink(s.query_id, "csv", u.searchParams), "the CSV link is signed");
  match(r.text, /48 rows × 8 columns[\s\S]*query_id: [0-9a-f-]{36}[\s\S]*First 20 of 48 rows/);
  const link = r.content.find((c) => c.type === "resource_link");
  equal(link?.uri, s.csv_url);
  equal(link?.mimeType, "text/csv");
  // The CSV holds every row in full.
  const csv = await Deno.readTextFile((await t.results.csvPath(s.query_id))!);
  const lines = csv.trimEnd().split("\n");
  equal(lines.length, 49);
  equal(lines[0], "time,sensor_id,co2,device_id,metadata,day,n,long");
  equal(lines[1], `2024-01-01T00:00:00.000Z,1,401,d1,{},2024-01-01,1.50,${"x".repeat(500)}`);
  equal(lines[48], `2024-01-01T23:00:00.000Z,3,633,d2,{},2024-01-01,1.50,${"x".repeat(500)}`);
}

async function writesCsvThatRoundTrips(t: Fixture) {
  const r = await t.call(
    "select device_id, device_name, location, metadata, (select payload from device_events e where e.device_id = d.device_id order by time limit 1) as first_event from devices d order by device_id",
  );
  equal(r.isError, false, r.text);
  const csv = await Deno.readTextFile((await t.results.csvPath(r.data!.query_id))!);
  equal(
    csv,
    "device_id,device_name,location,metadata,first_event\n" +
      'd1,"Kitchen, ""main""",kitchen,{},"{""fw"":""1.2"",""rssi"":-60}"\n' +
      'd2,Office,office,{},"{""fw"":""1.3"",""rssi"":-70}"\n' +
      "d3,Spare,,{},\n",
  );
  deepEqual(r.data!.preview[0], [
    "d1",
    'Kitchen, "main"',
    "kitchen",
    "{}",
    '{"fw":"1.2","rssi":-60}',
  ]);
}

async function truncatesAtMaxRows(t: Fixture) {
  const r = await t.call("select g from generate_series(1, 200) g order by g desc");
  equal(r.isError, false, r.text);
  equal(r.data!.row_count, 50);
  equal(r.data!.truncated, true);
  match(r.text, /TRUNCATED[\s\S]*more than 50 rows \(QUERY_MAX_ROWS\)/);
  const csv = await Deno.readTextFile((await t.results.csvPath(r.data!.query_id))!);
  const lines = csv.trimEnd().split("\n");
  equal(lines.length, 51);
  equal(lines[1], "200", "ORDER BY is kept");
  equal(lines[50], "151");
  const exact = await t.call("select g from generate_series(1, 50) g");
  equal(exact.data!.row_count, 50);
  equal(exact.data!.truncated, false, "exactly QUERY_MAX_ROWS rows is complete");
}

async function reportsPostgresErrors(t: Fixture) {
  const r = await t.call(
    "select device_id,\n  co3 from scd30_measurements join sensors using (sensor_id)",
  );
  equal(r.isError, true);
  match(r.text, /PostgreSQL error 42703: column "co3" does not exist \(line 2, column 3\)/);
  match(r.text, /get_database_schema/);
  const hint = await t.call("select device_ids from devices");
  match(
    hint.text,
    /42703[\s\S]*Hint: Perhaps you meant to reference the column "devices\.device_id"\. Call get_database_schema[^.]*\. Fix the query/,
  );
  const dup = await t.call("select 1, 2");
  equal(dup.isError, true);
  match(dup.text, /rule: column-names[\s\S]*\?column\?[\s\S]*AS/);
  const zero = await t.call("select 1 / 0 as x");
  match(zero.text, /22012: division by zero/);
}

async function clearsTheCache(t: Fixture) {
  const a = (await t.call("select 1 as a")).data!.query_id;
  const b = (await t.call("select 2 as b")).data!.query_id;
  const one = await t.client.callTool({ name: "clear_query_cache", arguments: { query_id: a } });
  equal(one.isError, undefined);
  deepEqual(one.structuredContent, { removed: [a], removed_queries: 1, removed_plots: 0 });
  equal(await t.results.csvPath(a), undefined);
  ok(await t.results.csvPath(b));
  const again = await t.client.callTool({ name: "clear_query_cache", arguments: { query_id: a } });
  match((again.content as Content)[0].text!, /Nothing removed[\s\S]*already removed/);
  for (const blank of ["", "  "]) {
    const r = await t.client.callTool({
      name: "clear_query_cache",
      arguments: { query_id: blank },
    });
    equal(r.isError, true, "a blank query_id is refused, not taken as 'remove everything'");
    match((r.content as Content)[0].text!, /query_id is empty/);
    ok(await t.results.csvPath(b), "nothing was removed");
  }
  await t.results.newPlot();
  const cached = (await t.results.list()).length;
  ok(cached >= 1);
  const all = await t.client.callTool({ name: "clear_query_cache", arguments: {} });
  equal((all.structuredContent as { removed_queries: number }).removed_queries, cached);
  match((all.content as Content)[0].text!, new RegExp(`${cached} query results? and 1 plot`));
  deepEqual(await t.results.list(), []);
  equal(await t.results.csvPath(b), undefined);
}

async function stopsAtTheByteCap(t: Fixture) {
  const r = await runQuery(
    t.db,
    "select g, repeat('x', 1000) as pad from generate_series(1, 500) g",
    {
      timeoutMs: 2000,
      maxRows: 1000,
      maxBytes: 10_000,
    },
  );
  equal(r.truncated, "bytes");
  ok(r.rows.length >= 8 && r.rows.length <= 10, `kept ${r.rows.length} rows`);
  deepEqual(r.rows.map((row) => row[0]), r.rows.map((_, i) => i + 1), "rows kept in order");
}

async function boundsHugeValues(t: Fixture) {
  const opts = { timeoutMs: 5000, maxRows: 100_000, maxBytes: 100_000 };
  // PostgreSQL refuses to send more than the cap: the value never reaches the server's memory.
  await rejects(
    runQuery(t.db, "select 1 as n, repeat('x', 5000000) as huge", opts),
    (e: Error) => e instanceof QueryFailed && /larger than the 98 KB limit/.test(e.message),
  );
  const wide = await runQuery(
    t.db,
    "select g, repeat('y', 30000) as pad from generate_series(1, 3000) g order by g",
    opts,
  );
  equal(wide.truncated, "bytes");
  ok(wide.rows.length >= 1 && wide.rows.length <= 4, `kept ${wide.rows.length} rows`);
  deepEqual(wide.rows.map((r) => r[0]), wide.rows.map((_, i) => i + 1), "rows kept in order");
  // Narrow rows first, then huge ones: the batch sized for narrow rows is stopped by PostgreSQL.
  const widening = await runQuery(
    t.db,
    "select g, case when g <= 3 then 'a' else repeat('x', 2000000) end as v " +
      "from generate_series(1, 1000) g",
    opts,
  );
  equal(widening.truncated, "bytes");
  ok(widening.rows.length >= 1 && widening.rows.length <= 3, `kept ${widening.rows.length}`);
  equal(widening.rows[0][0], 1);
}

// One seeded database for every step: opening the embedded database takes seconds.
Deno.test("execute_sql_query and clear_query_cache on a seeded database", async (ctx) => {
  await using t = await setup();
  await ctx.step(
    "execute_sql_query refuses hostile SQL with a reason and leaves the database unchanged",
    () => refusesHostileSql(t),
  );
  await ctx.step(
    "execute_sql_query runs window functions, FILTER, WITHIN GROUP, ROLLUP, CTEs, LATERAL and more",
    () => runsAnalyticSql(t),
  );
  await ctx.step(
    "execute_sql_query returns columns with types, a preview, a CSV link and a resource link",
    () => returnsTypesPreviewAndLinks(t),
  );
  await ctx.step(
    "execute_sql_query writes a CSV that round-trips quotes, commas, NULL and JSON",
    () => writesCsvThatRoundTrips(t),
  );
  await ctx.step(
    "execute_sql_query keeps QUERY_MAX_ROWS rows and says the result was truncated",
    () => truncatesAtMaxRows(t),
  );
  await ctx.step(
    "execute_sql_query reports PostgreSQL errors with SQLSTATE, position and advice",
    () => reportsPostgresErrors(t),
  );
  await ctx.step("runQuery() stops reading at the byte cap", () => stopsAtTheByteCap(t));
  await ctx.step(
    "runQuery() never loads a huge value or a batch of wide rows past the byte cap",
    () => boundsHugeValues(t),
  );
  await ctx.step("clear_query_cache removes one result or all of them", () => clearsTheCache(t));
});

Deno.test("runQuery() runs a few queries at once per database and refuses more than can wait", async () => {
  // A database whose transactions hang until released: stands in for runaway queries.
  const held: (() => void)[] = [];
  const hanging = () =>
    ({
      transaction: () => new Promise<void>((resolve) => held.push(resolve)),
    }) as unknown as Db;
  const db = hanging();
  const opts = { timeoutMs: 1000, maxRows: 10, maxBytes: 1000 };
  const { maxRunning, maxWaiting } = QUERY_SLOTS;
  const calls = Array.from(
    { length: maxRunning + maxWaiting },
    () => runQuery(db, "select 1 as n", opts).catch((e) => e),
  );
  await new Promise((r) => setTimeout(r, 50));
  equal(held.length, maxRunning, "only maxRunning queries reach the database");
  await rejects(runQuery(db, "select 1 as n", opts), (e: Error) => {
    ok(e instanceof QueryBusy);
    match(e.message, /Too many queries are running at once[\s\S]*try again/);
    return true;
  });
  // Another database is not affected.
  const other = hanging();
  const elsewhere = runQuery(other, "select 1 as n", opts).catch((e) => e);
  await new Promise((r) => setTimeout(r, 20));
  equal(held.length, maxRunning + 1);
  // Each finished query hands its slot to a waiting one, until all have run.
  for (let i = 0; i < held.length; i++) {
    held[i]();
    await new Promise((r) => setTimeout(r, 0));
  }
  const results = await Promise.all([...calls, elsewhere]);
  equal(held.length, maxRunning + maxWaiting + 1, "every waiting query ran in the end");
  equal(results.filter((r) => r instanceof QueryBusy).length, 0);
});
