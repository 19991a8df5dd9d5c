import { deepStrictEqual as assertEquals, rejects } from "node:assert/strict";
import { withTestDb } from "./testing.ts";
import { loadMigrations, migrate } from "./migrate.ts";
import { openPostgres } from "./_postgres.ts";

Deno.test("migrate() creates the tables of DESIGN.md and a second run applies nothing", async () => {
  await using db = await withTestDb({ migrate: false });
  const first = await migrate(db);
  const all = await loadMigrations();
  assertEquals(first, all.map((m) => m.version));
  assertEquals(await migrate(db), []);
  const tables = await db.sql<{ table_name: string }>`
    select table_name from information_schema.tables
    where table_schema = 'public' order by table_name`;
  const names = tables.map((t) => t.table_name);
  for (
    const t of [
      "bmp280_measurements",
      "device_alerts",
      "device_events",
      "devices",
      "measurements",
      "metrics",
      "rejected_messages",
      "schema_migrations",
      "scd30_measurements",
      "sensors",
    ]
  ) {
    assertEquals(names.includes(t), true, `missing table ${t}`);
  }
  const units = await db.sql<{ unit: string }>`
    select unit from metrics where sensor_type = 'scd30' and metric = 'co2'`;
  assertEquals(units[0].unit, "ppm");
});

Deno.test("migrate() run by two processes at once applies each migration once", async () => {
  await using db = await withTestDb({ migrate: false });
  if (!db.url) {
    // PGlite is one connection in one process: concurrency is a PostgreSQL-only concern.
    console.log("skipped: concurrent migration needs DATABASE_URL (real PostgreSQL)");
    return;
  }
  const a = openPostgres(db.url, { max: 1 });
  const b = openPostgres(db.url, { max: 1 });
  try {
    const [ra, rb] = await Promise.all([migrate(a), migrate(b)]);
    const all = (await loadMigrations()).map((m) => m.version);
    assertEquals([...ra, ...rb].sort((x, y) => x - y), all);
    const rows = await db.sql<{ n: number }>`select count(*)::int as n from schema_migrations`;
    assertEquals(rows[0].n, all.length);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("the sensor_reader role can read data tables but not write them", async () => {
  await using db = await withTestDb();
  await db.sql`insert into devices (device_id) values ('d1')`;
  await rejects(() =>
    db.transaction(async (tx) => {
      await tx.exec("set local role sensor_reader");
      const rows = await tx.sql`select device_id from devices`;
      assertEquals(rows.length, 1);
      await tx.sql`delete from devices`;
    })
  );
  await rejects(() =>
    db.transaction(async (tx) => {
      await tx.exec("set local role sensor_reader");
      await tx.sql`select * from rejected_messages`;
    })
  );
  const rows = await db.sql`select device_id from devices`;
  assertEquals(rows.length, 1);
});

Deno.test("a failing migration rolls back and names itself", async () => {
  await using db = await withTestDb({ migrate: false });
  await rejects(
    () => migrate(db, [{ version: 1, name: "broken", sql: "create table x (a int); select nope" }]),
    /Migration 1_broken failed/,
  );
  const rows = await db.sql`select 1 from information_schema.tables where table_name = 'x'`;
  assertEquals(rows.length, 0);
});
