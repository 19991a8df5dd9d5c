import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { guardSql, SqlRefused, type SqlRule } from "../lib/sql/mod.ts";

/** Hostile or non-read-only SQL, the rule that must refuse it, and words the message must say. */
const REFUSED: [string, SqlRule, RegExp][] = [
  ["COMMIT; DROP TABLE devices;", "one-statement", /one statement per call/],
  ["ROLLBACK; DELETE FROM scd30_measurements", "one-statement", /one at a time/],
  ["select 1; select 2", "one-statement", /found 2/],
  ["select 1 -- harmless\n; drop table devices", "one-statement", /one statement/],
  ["select $$;$$; drop table devices", "one-statement", /one statement/],
  ["select 1; /* */ drop table devices", "one-statement", /one statement/],
  ["ROLLBACK", "statement-kind", /COMMIT\/ROLLBACK are not needed/],
  ["begin read write", "statement-kind", /always rolled back/],
  ["DROP TABLE devices", "statement-kind", /DROP statements are not allowed/],
  ["/* looks harmless */ DELETE FROM devices", "data-modifying", /DELETE changes data/],
  ["insert into devices (device_id) values ('x')", "data-modifying", /INSERT/],
  ["update devices set status = 'x'", "data-modifying", /UPDATE/],
  ["truncate devices", "statement-kind", /TRUNCATE/],
  [
    "with gone as (delete from devices returning *) select * from gone",
    "data-modifying",
    /data-modifying DELETE/,
  ],
  [
    "with x as (insert into devices (device_id) values ('evil') returning 1) select 1",
    "data-modifying",
    /INSERT/,
  ],
  [
    "select * from (with u as (update sensors set location = 'x' returning 1) select * from u) s",
    "data-modifying",
    /UPDATE/,
  ],
  ["select * into stolen from devices", "select-into", /INTO creates a table/],
  ["create table stolen as select * from devices", "statement-kind", /CREATE TABLE AS/],
  ["select * from devices for update", "locking", /FOR UPDATE locks rows/],
  ["select * from devices for share skip locked", "locking", /FOR SHARE/],
  ["select * from devices for no key update nowait", "locking", /FOR NO KEY UPDATE/],
  [
    "select * from devices where exists (select 1 from sensors for key share)",
    "locking",
    /FOR KEY SHARE/,
  ],
  ["select pg_sleep(30)", "denied-function", /pg_sleep is not allowed/],
  ["select pg_catalog.pg_sleep(30)", "denied-function", /pg_sleep/],
  ['select "pg_sleep"(30)', "denied-function", /pg_sleep/],
  ['select pg_catalog."pg_sleep"(30)', "denied-function", /pg_sleep/],
  ["select * from pg_sleep(30)", "denied-function", /pg_sleep/],
  ["select * from rows from (generate_series(1,2), pg_sleep(1))", "denied-function", /pg_sleep/],
  ["select PG_SLEEP(1)", "denied-function", /pg_sleep/i],
  ['select U&"pg\\005fsleep"(1)', "denied-function", /pg_sleep/],
  ["select pg_sleep_for('1 minute')", "denied-function", /pg_sleep_for/],
  ["select (select pg_sleep(10))", "denied-function", /pg_sleep/],
  ["select 1 where pg_sleep(1) is null", "denied-function", /pg_sleep/],
  ["select count(*) filter (where pg_sleep(1) is null) from devices", "denied-function", /sleep/],
  ["select (30::float8).pg_sleep", "denied-function", /calls the function pg_sleep/],
  ["select t.pg_sleep from (select 30::float8) t", "denied-function", /pg_sleep/],
  ["select (1::bigint).pg_advisory_lock", "denied-function", /pg_advisory_lock/],
  ["select ('rejected_messages_id_seq'::regclass).nextval", "denied-function", /nextval/],
  ["select (x).lo_unlink from (select 1::oid as x) s", "denied-function", /lo_unlink/],
  ["select pg_read_file('/etc/passwd')", "denied-function", /pg_read_file/],
  ["select pg_read_binary_file('/etc/passwd')", "denied-function", /pg_read_binary_file/],
  ["select * from pg_ls_dir('.')", "denied-function", /pg_ls_dir/],
  ["select pg_stat_file('postgresql.conf')", "denied-function", /pg_stat_file/],
  ["select lo_import('/etc/passwd')", "denied-function", /lo_import/],
  ["select lo_export(1234, '/tmp/x')", "denied-function", /lo_export/],
  ["select loread(lo_open(1, 262144), 100)", "denied-function", /lo/],
  [
    "select * from dblink('host=127.0.0.1', 'drop table devices') as t(x int)",
    "denied-function",
    /dblink/,
  ],
  ["select dblink_exec('drop table devices')", "denied-function", /dblink_exec/],
  [
    "select set_config('transaction_read_only', 'off', true)",
    "denied-function",
    /set_config is not allowed/,
  ],
  ["select pg_terminate_backend(pg_backend_pid())", "denied-function", /pg_terminate_backend/],
  ["select pg_cancel_backend(1)", "denied-function", /pg_cancel_backend/],
  ["select pg_advisory_lock(1)", "denied-function", /pg_advisory_lock/],
  ["select pg_try_advisory_xact_lock(1)", "denied-function", /pg_try_advisory/],
  ["select nextval('rejected_messages_id_seq')", "denied-function", /nextval/],
  ["select setval('rejected_messages_id_seq', 1)", "denied-function", /setval/],
  ["select currval('rejected_messages_id_seq')", "denied-function", /currval/],
  ["select pg_reload_conf()", "denied-function", /pg_reload_conf/],
  ["select pg_rotate_logfile()", "denied-function", /pg_rotate_logfile/],
  ["select pg_switch_wal()", "denied-function", /pg_switch_wal/],
  [
    "select pg_create_logical_replication_slot('s', 'test_decoding')",
    "denied-function",
    /pg_create_logical_replication_slot/,
  ],
  ["select * from pg_logical_slot_get_changes('s', null, null)", "denied-function", /pg_logical/],
  ["select query_to_xml('delete from devices', true, true, '')", "denied-function", /query_to_xml/],
  ["select table_to_xml('devices', true, true, '')", "denied-function", /table_to_xml/],
  ["select txid_current()", "denied-function", /txid_current/],
  ["select * from ts_stat('select pg_sleep(9)::text::tsvector')", "denied-function", /runs SQL/],
  ["select pg_current_xact_id()", "denied-function", /pg_current_xact_id/],
  ["select pg_notify('ch', 'x')", "denied-function", /pg_notify/],
  [
    "select brin_summarize_new_values('scd30_measurements_time_brin')",
    "denied-function",
    /changes an index/,
  ],
  ["explain analyze delete from devices", "data-modifying", /EXPLAIN of this statement/],
  ["explain select pg_sleep(10)", "denied-function", /pg_sleep/],
  ["DO $$ begin drop table devices; end $$", "statement-kind", /DO blocks/],
  ["COPY devices TO PROGRAM 'touch /tmp/pwned'", "statement-kind", /COPY/],
  ["copy (select 1) to '/tmp/x'", "statement-kind", /COPY/],
  ["SET ROLE postgres", "statement-kind", /SET\/RESET/],
  ["set statement_timeout = 0", "statement-kind", /SET/],
  ["reset role", "statement-kind", /SET\/RESET/],
  ["show data_directory", "statement-kind", /current_setting/],
  ["prepare p as delete from devices", "statement-kind", /PREPARE/],
  ["execute p", "statement-kind", /EXECUTE/],
  ["call some_procedure()", "statement-kind", /CALL/],
  ["declare c cursor for select 1", "statement-kind", /Cursors/],
  ["lock table devices", "statement-kind", /LOCK/],
  ["grant all on devices to public", "statement-kind", /GRANT/],
  ["vacuum devices", "statement-kind", /VACUUM/],
  ["listen ch", "statement-kind", /LISTEN/],
  ["select * from scd30_measurements where sensor_id = $1", "parameters", /literals/],
  ["", "empty", /empty/],
  ["   \n\t  ", "empty", /empty/],
  ["-- just a comment", "empty", /only comments/],
  ["/* nothing */ ;", "empty", /only comments/],
  ["selec 1", "syntax", /Syntax error: syntax error at or near "selec" \(line 1, column 1\)/],
  ["select * from\n  devices wher x", "syntax", /at or near "x" \(line 2, column 16\)/],
  ["select 'unterminated", "syntax", /unterminated quoted string/],
];

/** Analytic SQL that must pass untouched, with the kind of statement. */
const ACCEPTED: [string, "select" | "explain"][] = [
  [
    "select sensor_id, time, co2, avg(co2) over (partition by sensor_id order by time rows between 2 preceding and current row) from scd30_measurements",
    "select",
  ],
  [
    "select sensor_id, count(*) filter (where co2 > 1000) from scd30_measurements group by 1",
    "select",
  ],
  ["select percentile_cont(0.5) within group (order by co2) from scd30_measurements", "select"],
  [
    "select date_bin('15 minutes', time, timestamptz '2000-01-01') as b, avg(co2) from scd30_measurements group by b order by b",
    "select",
  ],
  [
    "select distinct on (sensor_id) sensor_id, time, co2 from scd30_measurements order by sensor_id, time desc",
    "select",
  ],
  [
    "select payload->>'fw', payload->'x'->0, payload #>> '{a,b}', payload ? 'fw', payload @> '{}' from device_events",
    "select",
  ],
  [
    "select sensor_type, location, count(*) from sensors group by rollup (sensor_type, location)",
    "select",
  ],
  [
    "select sensor_type, location, count(*) from sensors group by cube (sensor_type, location)",
    "select",
  ],
  [
    "select sensor_id, metric_type, count(*) from measurements group by grouping sets ((sensor_id), (metric_type), ())",
    "select",
  ],
  [
    "with recursive r(n) as (select 1 union all select n + 1 from r where n < 5) select * from r",
    "select",
  ],
  [
    "with h as (select date_trunc('hour', time) h, avg(co2) c from scd30_measurements group by 1) select * from h",
    "select",
  ],
  ["values (1, 'a'), (2, 'b')", "select"],
  ["table metrics", "select"],
  ["explain select * from scd30_measurements", "explain"],
  ["explain (analyze, costs off, format json) select count(*) from scd30_measurements", "explain"],
  [
    "select d.device_id, l.* from devices d left join lateral (select time from sensors s where s.device_id = d.device_id limit 1) l on true",
    "select",
  ],
  ["select g from generate_series(1, 10) g", "select"],
  [
    "select device_id from devices union all select device_id from sensors except select 'x'",
    "select",
  ],
  ["select 'it''s; -- not a comment' as s, $q$ ; drop table x $q$ as t, E'\\'' as e", "select"],
  ["select * from devices; -- trailing comment", "select"],
  [
    "select regexp_replace(device_id, '[0-9]+', ''), now() - interval '1 day', current_setting('TimeZone') from devices",
    "select",
  ],
  [
    "select s.* from sensors s where s.sensor_id in (select sensor_id from measurements where value > 0)",
    "select",
  ],
  ["select json_agg(d) from devices d", "select"],
  [
    "select * from devices d join sensors s using (device_id) order by 1 limit 10 offset 5",
    "select",
  ],
  ["select lower(device_id) as lo_device from devices", "select"],
  ["select (payload).fw, d.device_id, s.* from devices d, sensors s, device_events", "select"],
  ["select (array[1, 2])[1], (d).device_id from devices d", "select"],
];

Deno.test("guardSql() refuses each hostile statement and names the rule", async () => {
  for (const [sql, rule, words] of REFUSED) {
    await rejects(() => guardSql(sql), (error: unknown) => {
      ok(error instanceof SqlRefused, `${sql}: ${error}`);
      equal(error.name, "SqlRefused");
      equal(error.rule, rule, `${JSON.stringify(sql)} refused by ${error.rule}: ${error.message}`);
      match(error.message, words, sql);
      return true;
    });
  }
});

Deno.test("guardSql() accepts the analytic SQL an assistant writes", async () => {
  for (const [sql, kind] of ACCEPTED) {
    const r = await guardSql(sql).catch((e) => {
      throw new Error(`${sql} was refused: ${e.message}`);
    });
    equal(r.kind, kind, sql);
  }
});

Deno.test("guardSql() returns the statement alone, without a trailing semicolon or comment", async () => {
  deepEqual(await guardSql("  /* é */ select 'é' as x;  -- done\n"), {
    kind: "select",
    analyze: false,
    text: "select 'é' as x",
    offset: 10,
  });
  const plan = await guardSql("explain (analyze) select 1");
  equal(plan.kind, "explain");
  equal(plan.analyze, true);
  equal((await guardSql("explain (analyze false) select 1")).analyze, false);
});

Deno.test("guardSql() refuses absurdly deep nesting with a clear message", async () => {
  for (
    const sql of [
      "select " + "(".repeat(20_000) + "1" + ")".repeat(20_000),
      "select " + Array(20_000).fill("1").join("-"),
    ]
  ) {
    await rejects(guardSql(sql), (e: Error) => {
      ok(e instanceof SqlRefused, String(e));
      match(e.message, /nested too deeply/);
      return true;
    });
  }
  equal((await guardSql("select 1 as still_parses")).kind, "select");
});
