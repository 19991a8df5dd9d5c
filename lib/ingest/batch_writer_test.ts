import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { type Db, openDb, type Queryable, type Row } from "../db/mod.ts";
import { withTestDb } from "../db/testing.ts";
import { COPY_PAUSE_BATCHES, createBatchWriter } from "./batch_writer.ts";
import { decodeMessage } from "./decode_message.ts";
import type { Decoded, ReadingMessage } from "./types.ts";

const enc = new TextEncoder();
const NOW = Date.UTC(2024, 5, 1, 12, 0, 0);
const T0 = 1699564800; // the contract's example timestamp

function msg(topic: string, payload: unknown, receivedAt = NOW): Decoded {
  const text = typeof payload === "string" ? payload : JSON.stringify(payload);
  return decodeMessage({ topic, payload: enc.encode(text), receivedAt });
}

function scd30(device: string, ts: number, co2: number, temperature = 21.5, humidity = 40) {
  return msg(`devices/${device}/sensors/scd30/data`, {
    timestamp: ts,
    value: {
      co2: { reading: co2 },
      temperature: { reading: temperature },
      humidity: { reading: humidity },
    },
  });
}

const CAPABILITIES = {
  device_name: "Living room",
  firmware_version: "1.4.2",
  device_location: "living room",
  sensors: ["scd30", "bmp280"],
  metadata: { scd30: { location: "shelf" }, bmp280: { location: "window" } },
};

/** The contract's example messages of one device. */
function examples(): Decoded[] {
  return [
    msg("devices/esp32-01/capabilities", CAPABILITIES),
    msg(
      "devices/esp32-01/sensors/scd30/data",
      `{"timestamp":${T0},"value":{"co2":{"reading":678},"temperature":{"reading":22.5},` +
        `"humidity":{"reading":41.5}}}`,
    ),
    msg("devices/esp32-01/sensors/bmp280/data", {
      timestamp: T0,
      value: { pressure: 1013.2, temperature: { reading: 22.1 } },
    }),
    msg("devices/esp32-01/status", `"online"`),
    msg("devices/esp32-01/error", `{"code":5,"message":"SCD30 not found"}`),
  ];
}

async function rows(db: Queryable, query: string): Promise<Row[]> {
  return (await db.query(query)).rows;
}

async function count(db: Queryable, table: string): Promise<number> {
  const [r] = await rows(db, `select count(*)::int as n from ${table}`);
  return r.n as number;
}

async function columns(db: Queryable, table: string): Promise<string[]> {
  const r = await db.sql<{ name: string }>`
    select column_name::text as name from information_schema.columns
    where table_schema = current_schema() and table_name = ${table} order by ordinal_position`;
  return r.map((x) => x.name);
}

/** The daily co2 rollups hold the count and sum of what both tables hold. */
async function assertRollupsMatchTables(db: Queryable): Promise<void> {
  assertEquals(
    await rows(
      db,
      `select layout, sum(count)::int as n, sum(sum)::float8 as s from rollup_1d
       where metric = 'co2' group by 1 order by 1`,
    ),
    await rows(
      db,
      `select 'columnar' as layout, count(*)::int as n, sum(co2)::float8 as s
       from scd30_measurements
       union all select 'flexible', count(*)::int, sum(value)::float8
       from measurements where metric_type = 'co2' order by 1`,
    ),
  );
}

Deno.test("createBatchWriter() stores the contract's example messages in both layouts", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  await writer.write(examples());

  const [scd, bmp] = await rows(
    db,
    `select sensor_id from sensors where device_id = 'esp32-01' order by sensor_type desc`,
  );
  assertEquals(
    await rows(
      db,
      `select extract(epoch from time)::int as t, sensor_id, co2, temperature, humidity
       from scd30_measurements`,
    ),
    [{ t: T0, sensor_id: scd.sensor_id, co2: 678, temperature: 22.5, humidity: 41.5 }],
  );
  assertEquals(
    await rows(
      db,
      `select extract(epoch from time)::int as t, sensor_id, pressure, temperature, humidity
       from bmp280_measurements`,
    ),
    [{ t: T0, sensor_id: bmp.sensor_id, pressure: 1013.2, temperature: 22.1, humidity: null }],
  );
  assertEquals(
    await rows(
      db,
      `select s.sensor_type, m.metric_type, m.value, extract(epoch from m.time)::int as t
       from measurements m join sensors s using (sensor_id)
       order by s.sensor_type, m.metric_type`,
    ),
    [
      { sensor_type: "bmp280", metric_type: "pressure", value: 1013.2, t: T0 },
      { sensor_type: "bmp280", metric_type: "temperature", value: 22.1, t: T0 },
      { sensor_type: "scd30", metric_type: "co2", value: 678, t: T0 },
      { sensor_type: "scd30", metric_type: "humidity", value: 41.5, t: T0 },
      { sensor_type: "scd30", metric_type: "temperature", value: 22.5, t: T0 },
    ],
  );
  assertEquals(
    await rows(
      db,
      `select device_id, device_name, location, firmware_version, status, metadata,
              last_seen = to_timestamp(${NOW / 1000}) as seen_now
       from devices`,
    ),
    [{
      device_id: "esp32-01",
      device_name: "Living room",
      location: "living room",
      firmware_version: "1.4.2",
      status: "online",
      metadata: CAPABILITIES.metadata,
      seen_now: true,
    }],
  );
  assertEquals(
    await rows(
      db,
      `select sensor_type, location, metadata, extract(epoch from last_seen)::int as seen
       from sensors order by sensor_type`,
    ),
    [
      { sensor_type: "bmp280", location: "window", metadata: { location: "window" }, seen: T0 },
      { sensor_type: "scd30", location: "shelf", metadata: { location: "shelf" }, seen: T0 },
    ],
  );
  assertEquals(
    await rows(db, `select device_id, kind, payload from device_events order by kind`),
    [
      { device_id: "esp32-01", kind: "capabilities", payload: CAPABILITIES },
      { device_id: "esp32-01", kind: "error", payload: { code: 5, message: "SCD30 not found" } },
      { device_id: "esp32-01", kind: "status", payload: "online" },
    ],
  );
  assertEquals(await count(db, "rejected_messages"), 0);
});

Deno.test("createBatchWriter() writes only the layouts it is given", async () => {
  await using db = await withTestDb();
  await createBatchWriter(db, { layouts: ["columnar"] }).write([
    scd30("d1", T0, 500),
    msg("devices/d1/sensors/sgp40/data", { timestamp: T0, value: { voc: 120 } }),
  ]);
  assertEquals(await count(db, "scd30_measurements"), 1);
  assertEquals(await count(db, "sgp40_measurements"), 1);
  assertEquals(await count(db, "measurements"), 0);

  await using db2 = await withTestDb();
  await createBatchWriter(db2, { layouts: ["flexible"] }).write([
    scd30("d1", T0, 500),
    msg("devices/d1/sensors/sgp40/data", { timestamp: T0, value: { voc: 120 } }),
  ]);
  assertEquals(await count(db2, "scd30_measurements"), 0);
  assertEquals(await count(db2, "measurements"), 4);
  assertEquals(await columns(db2, "sgp40_measurements"), [], "no table without columnar");
  assertEquals(
    await rows(db2, `select metric, unit from metrics where sensor_type = 'sgp40'`),
    [{ metric: "voc", unit: null }],
    "the schema still learns the metric",
  );
});

Deno.test("createBatchWriter() creates a table for a new sensor type that sensor_reader can read", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  await writer.write([
    msg("devices/d1/sensors/bme-680/data", {
      timestamp: T0,
      value: { gas_resistance: 12000.5, IAQ: { reading: 50 } },
    }),
  ]);
  assertEquals(await columns(db, "bme_680_measurements"), [
    "time",
    "sensor_id",
    "gas_resistance",
    "iaq",
  ]);
  assertEquals(
    await rows(db, `select gas_resistance, iaq from bme_680_measurements`),
    [{ gas_resistance: 12000.5, iaq: 50 }],
  );
  const [info] = await rows(
    db,
    `select
       (select count(*)::int from pg_indexes
        where tablename = 'bme_680_measurements' and indexdef ilike '%using brin (%time%)') as brin,
       (select array_agg(a.attname::text order by a.attname::text)
        from pg_index i join pg_attribute a
          on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
        where i.indrelid = 'bme_680_measurements'::regclass and i.indisprimary) as pk,
       has_table_privilege('sensor_reader', 'bme_680_measurements', 'select') as readable,
       has_table_privilege('sensor_reader', 'bme_680_measurements', 'insert') as writable`,
  );
  assertEquals(info, { brin: 1, pk: ["sensor_id", "time"], readable: true, writable: false });
  assertEquals(
    await rows(
      db,
      `select metric, unit from metrics where sensor_type = 'bme_680' order by metric`,
    ),
    [{ metric: "gas_resistance", unit: null }, { metric: "iaq", unit: null }],
  );
});

Deno.test("createBatchWriter() adds a column for a new metric of a known sensor type", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  await writer.write([scd30("d1", T0, 500)]);
  await writer.write([
    msg("devices/d1/sensors/scd30/data", {
      timestamp: T0 + 10,
      value: { co2: 510, pm2_5: { reading: 3.5 } },
    }),
  ]);
  assertEquals(await columns(db, "scd30_measurements"), [
    "time",
    "sensor_id",
    "co2",
    "temperature",
    "humidity",
    "pm2_5",
  ]);
  assertEquals(
    await rows(db, `select co2, temperature, pm2_5 from scd30_measurements order by time`),
    [{ co2: 500, temperature: 21.5, pm2_5: null }, { co2: 510, temperature: null, pm2_5: 3.5 }],
  );
  assertEquals(
    await rows(db, `select value from measurements where metric_type = 'pm2_5'`),
    [{ value: 3.5 }],
  );
  assertEquals(
    await rows(db, `select unit from metrics where sensor_type = 'scd30' and metric = 'pm2_5'`),
    [{ unit: null }],
  );
});

Deno.test("createBatchWriter() stores each row once when a batch is replayed, also after a restart", async () => {
  await using db = await withTestDb();
  const batch = [
    ...examples(),
    scd30("d2", T0 + 60, 700),
    msg("devices/d2/sensors/scd30/data", `{"value":{"co2":"high"}}`),
    msg("devices/d2/sensors/scd30/data", { timestamp: T0 + 120, value: { co2: 1, x: "NaN" } }),
  ];
  const tables = [
    "scd30_measurements",
    "bmp280_measurements",
    "measurements",
    "devices",
    "sensors",
    "device_events",
    "rejected_messages",
  ];
  const counts = () => Promise.all(tables.map((t) => count(db, t)));
  await createBatchWriter(db, { layouts: ["columnar", "flexible"] }).write(batch);
  const first = await counts();
  assertEquals(first, [3, 1, 9, 2, 3, 3, 2]);
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  await writer.write(batch);
  await writer.write(batch);
  assertEquals(await counts(), first);
});

Deno.test("createBatchWriter() keeps the first of two readings of one sensor at one time", async () => {
  await using db = await withTestDb();
  await createBatchWriter(db, { layouts: ["columnar", "flexible"] }).write([
    scd30("d1", T0, 500),
    scd30("d1", T0, 999),
    scd30("d1", T0 + 1, 501),
  ]);
  assertEquals(
    await rows(db, `select co2 from scd30_measurements order by time`),
    [{ co2: 500 }, { co2: 501 }],
  );
  assertEquals(
    await rows(db, `select value from measurements where metric_type = 'co2' order by time`),
    [{ value: 500 }, { value: 501 }],
  );
});

Deno.test("createBatchWriter() registers unknown devices and never moves last_seen back", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["flexible"] });
  await writer.write([scd30("new-board", T0 + 600, 500)]);
  await writer.write([scd30("new-board", T0, 400)]); // a late, older reading
  assertEquals(
    await rows(
      db,
      `select d.device_id, d.status, extract(epoch from d.last_seen)::int as dev,
              s.sensor_type, extract(epoch from s.last_seen)::int as sen
       from devices d join sensors s using (device_id)`,
    ),
    [{
      device_id: "new-board",
      status: "unknown",
      dev: T0 + 600,
      sensor_type: "scd30",
      sen: T0 + 600,
    }],
  );
  assertEquals(await count(db, "measurements"), 6);
});

Deno.test("createBatchWriter() lets the newest status win even when an older one is replayed", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar"] });
  const online = msg("devices/d1/status", "online", NOW);
  const offline = msg("devices/d1/status", `{"status":"offline"}`, NOW + 1000);
  await writer.write([online, offline]);
  assertEquals(await rows(db, `select status from devices`), [{ status: "offline" }]);
  await writer.write([online]); // journal replay of an older batch
  assertEquals(await rows(db, `select status from devices`), [{ status: "offline" }]);
  await writer.write([msg("devices/d1/status", "online", NOW + 2000)]);
  assertEquals(await rows(db, `select status from devices`), [{ status: "online" }]);
  assertEquals(await count(db, "device_events"), 3);
});

Deno.test("createBatchWriter() records rejected input and the bad part of a partly good message", async () => {
  await using db = await withTestDb();
  await createBatchWriter(db, { layouts: ["columnar", "flexible"] }).write([
    msg("devices/d1/sensors/scd30/data", "{not json", NOW),
    msg("devices/d 1/status", "online", NOW),
    msg("devices/d1/sensors/scd30/data", {
      timestamp: T0,
      value: { co2: 600, humidity: "NaN" },
    }, NOW + 1),
    scd30("d1", T0 + 5, 610),
  ]);
  assertEquals(
    await rows(
      db,
      `select topic, payload, reason, (extract(epoch from received_at) * 1000)::bigint as at
       from rejected_messages order by received_at, topic desc`,
    ),
    [
      {
        topic: "devices/d1/sensors/scd30/data",
        payload: "{not json",
        reason: `payload is not valid JSON: Expected property name or '}' in JSON at position 1 ` +
          `(line 1 column 2)`,
        at: NOW,
      },
      {
        topic: "devices/d 1/status",
        payload: "online",
        reason: `Cannot parse topic "devices/d 1/status": device id "d 1" must match ` +
          `[A-Za-z0-9_-]{1,64}`,
        at: NOW,
      },
      {
        topic: "devices/d1/sensors/scd30/data",
        payload: `{"timestamp":${T0},"value":{"co2":600,"humidity":"NaN"}}`,
        reason: `metric "humidity": reading must be a number, got string "NaN" ` +
          `(expected {"reading": n} or n)`,
        at: NOW + 1,
      },
    ],
  );
  assertEquals(
    await rows(db, `select co2, humidity from scd30_measurements order by time`),
    [{ co2: 600, humidity: null }, { co2: 610, humidity: 40 }],
  );
});

Deno.test("createBatchWriter() never lets a hostile name reach SQL", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  // Readings the decoder never produces, handed to the writer directly.
  const reading = (sensorType: string, metrics: Record<string, number>): ReadingMessage => ({
    kind: "reading",
    device: "d1",
    sensorType,
    time: new Date(T0 * 1000),
    metrics,
    timestampReplaced: false,
  });
  const hostile = [
    reading("scd30", { 'co2" double precision; drop table devices; --': 1 }),
    reading("x_measurements; drop table sensors; --", { co2: 1 }),
    reading("scd30", { xmin: 1 }),
  ];
  await writer.write([
    ...hostile,
    msg("devices/d1/sensors/scd30/data", `{"value":{"co2\\"; drop table devices; --":1}}`),
    scd30("d1", T0, 500),
  ]);
  const reasons = (await rows(db, `select reason from rejected_messages`))
    .map((r) => r.reason as string).sort();
  assertEquals(reasons, [
    `metric "co2\\" double precision; drop table devices; --" cannot name a column`,
    `metric "co2\\"; drop table devices; --" is not a valid name (letters, digits and _, at most ` +
    `63, not starting with a digit)`,
    `metric "xmin" cannot name a column`,
    `sensor type "x_measurements; drop table sensors; --" cannot name a table`,
  ]);
  assertEquals(await columns(db, "scd30_measurements"), [
    "time",
    "sensor_id",
    "co2",
    "temperature",
    "humidity",
  ]);
  assertEquals(await count(db, "devices"), 1);
  assertEquals(await count(db, "sensors"), 1);
  assertEquals(await count(db, "scd30_measurements"), 1);
});

Deno.test("createBatchWriter() refuses sensor types and metrics beyond its limits", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, {
    layouts: ["columnar", "flexible"],
    maxSensorTypes: 3, // scd30 and bmp280 exist already
    maxMetricsPerType: 4, // scd30 has co2, temperature, humidity
  });
  await writer.write([
    msg("devices/d1/sensors/sgp40/data", { timestamp: T0, value: { voc: 1 } }),
    msg("devices/d1/sensors/sht31/data", { timestamp: T0, value: { humidity: 2 } }),
    msg("devices/d1/sensors/scd30/data", { timestamp: T0, value: { co2: 3, a: 4, b: 5 } }),
  ]);
  assertEquals(await count(db, "sgp40_measurements"), 1);
  assertEquals(await columns(db, "sht31_measurements"), []);
  assertEquals(
    await rows(db, `select co2, a from scd30_measurements`),
    [{ co2: 3, a: 4 }],
  );
  assert(!(await columns(db, "scd30_measurements")).includes("b"));
  const reasons = (await rows(db, `select reason from rejected_messages order by reason`))
    .map((r) => r.reason as string);
  assertEquals(reasons, [
    `metrics "b" refused: sensor type "scd30" already has 4 metrics, the most the collector creates`,
    `sensor type "sht31" refused: the database already has 3 sensor types, the most the collector ` +
    `creates (README: remove unused ones with drop_sensor_type)`,
  ]);
});

Deno.test("createBatchWriter() stores the rest of a batch when the database refuses one message", async () => {
  await using db = await withTestDb();
  await db.exec(`alter table scd30_measurements add constraint co2_sane check (co2 < 40000)`);
  const batch = [];
  for (let i = 0; i < 20; i++) batch.push(scd30("d1", T0 + i, i === 13 ? 50000 : 400 + i));
  await createBatchWriter(db, { layouts: ["columnar", "flexible"] }).write(batch);
  assertEquals(await count(db, "scd30_measurements"), 19);
  const [r] = await rows(db, `select topic, payload, reason from rejected_messages`);
  assertEquals(r.topic, "devices/d1/sensors/scd30/data");
  assert((r.payload as string).includes(`"co2":50000`), r.payload as string);
  assert((r.reason as string).startsWith("database refused the message:"), r.reason as string);
  assert((r.reason as string).includes("co2_sane"), r.reason as string);
});

Deno.test("createBatchWriter() lets two collectors create the same new table and column at once", async () => {
  await using db = await withTestDb();
  // Two clients on real PostgreSQL, as two collector processes would be.
  const other: Db = db.url ? await openDb({ databaseUrl: db.url, dataDir: "", max: 2 }) : db;
  try {
    const a = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
    const b = createBatchWriter(other, { layouts: ["columnar", "flexible"] });
    const batch = (device: string) => [
      msg(`devices/${device}/sensors/ccs811/data`, {
        timestamp: T0,
        value: { eco2: 400, tvoc: 3 },
      }),
      msg(`devices/${device}/sensors/scd30/data`, { timestamp: T0, value: { co2: 1, pm10: 2 } }),
    ];
    await Promise.all([a.write(batch("d1")), b.write(batch("d2")), a.write(batch("d3"))]);
    assertEquals(await count(db, "ccs811_measurements"), 3);
    assertEquals(
      await rows(db, `select count(*)::int as n from scd30_measurements where pm10 = 2`),
      [{ n: 3 }],
    );
    assertEquals(await count(db, "rejected_messages"), 0);
  } finally {
    if (other !== db) await other.close();
  }
});

Deno.test("createBatchWriter() throws when the database is gone and the batch can be written later", async () => {
  await using db = await withTestDb();
  const batch = [scd30("d1", T0, 500)];
  const gone = db.url ? await openDb({ databaseUrl: db.url, dataDir: "", max: 1 }) : db;
  await gone.close();
  await rejects(createBatchWriter(gone, { layouts: ["columnar"] }).write(batch));
  if (db.url) {
    assertEquals(await count(db, "scd30_measurements"), 0);
    await createBatchWriter(db, { layouts: ["columnar"] }).write(batch);
    assertEquals(await count(db, "scd30_measurements"), 1);
  }
});

Deno.test("createBatchWriter() writes 5000 readings in a handful of statements", async () => {
  await using db = await withTestDb();
  const statements: string[] = [];
  const counting = (q: Queryable): Queryable => ({
    sql: (strings, ...values) => {
      statements.push(strings.join("?"));
      return q.sql(strings, ...values);
    },
    query: (text, params) => {
      statements.push(text);
      return q.query(text, params);
    },
    exec: (script) => q.exec(script),
    ...(q.copyIn
      ? {
        copyIn: (statement: string, data: string) => {
          statements.push(statement);
          return q.copyIn!(statement, data);
        },
      }
      : {}),
  });
  const spy: Db = { ...db, transaction: (fn, o) => db.transaction((tx) => fn(counting(tx)), o) };
  // One transaction (lane) for the whole batch; lanes are the next test's.
  const writer = createBatchWriter(spy, { layouts: ["columnar", "flexible"], lanes: 1 });
  const batch: Decoded[] = [];
  for (let i = 0; i < 5000; i++) batch.push(scd30(`dev${i % 250}`, T0 + Math.floor(i / 250), i));
  await writer.write(batch);
  const first = statements.length;
  statements.length = 0;
  for (const m of batch) (m as ReadingMessage).time = new Date(m.time.getTime() + 3600_000);
  await writer.write(batch);
  assertEquals(await count(db, "scd30_measurements"), 10_000);
  assertEquals(await count(db, "measurements"), 30_000);
  // The first batch also looks up the schema and registers the 250 sensors.
  assert(first <= 12, `first batch took ${first} statements`);
  // With sensors cached: devices, the readings (one COPY per layout under a savepoint), sensors'
  // last_seen.
  assertEquals(statements.length, 6, statements.join("\n---\n"));
});

Deno.test({
  name:
    "createBatchWriter() COPYs readings in, and a batch holding stored ones takes the insert path",
  fn: async () => {
    await using db = await withTestDb();
    const copies = { ok: 0, refused: 0 };
    const spy: Db = {
      ...db,
      transaction: (fn, o) =>
        db.transaction((tx) =>
          fn({
            ...tx,
            copyIn: async (statement: string, data: string) => {
              try {
                await tx.copyIn!(statement, data);
                copies.ok++;
              } catch (err) {
                copies.refused++;
                throw err;
              }
            },
          }), o),
    };
    const writer = createBatchWriter(spy, { layouts: ["columnar", "flexible"] });
    const batch = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => scd30(`dev${(from + i) % 7}`, T0 + from + i, from + i));
    await writer.write(batch(0, 100));
    assertEquals(copies, { ok: 2, refused: 0 }); // one COPY per layout
    // A replay of ten stored readings, ten new ones and another value for a stored time: the COPY
    // is refused and nothing of it stays; the insert path stores the new ones once.
    await writer.write([...batch(90, 20), scd30("dev0", T0 + 0, 12345)]);
    assertEquals(copies, { ok: 2, refused: 1 });
    assertEquals(await count(db, "scd30_measurements"), 110);
    assertEquals(await count(db, "measurements"), 330);
    const [r] = await rows(db, `select reason from rejected_messages`);
    assert(String(r.reason).startsWith("conflicting duplicate"), String(r.reason));
    // Replays come in runs: the next batches insert without trying COPY, then COPY is back.
    for (let i = 0; i < COPY_PAUSE_BATCHES; i++) await writer.write(batch(200 + 10 * i, 10));
    assertEquals(copies, { ok: 2, refused: 1 });
    await writer.write(batch(1000, 10));
    assertEquals(copies, { ok: 4, refused: 1 });
    const stored = 110 + 10 * COPY_PAUSE_BATCHES + 10;
    assertEquals(await count(db, "scd30_measurements"), stored);
    // Every reading once in both layouts, the rollups equal to the tables, co2 as sent.
    assertEquals(
      await rows(db, `select count(*)::int as n, sum(co2)::float8 as s from scd30_measurements`),
      [{
        n: stored,
        s: (await rows(
          db,
          `select sum(value)::float8 as s from measurements
                                        where metric_type = 'co2'`,
        ))[0].s,
      }],
    );
    await assertRollupsMatchTables(db);
  },
});

Deno.test("createBatchWriter() splits a full batch into lanes by device and stores it as one lane would", async () => {
  await using db = await withTestDb();
  await db.exec(`alter table scd30_measurements add constraint co2_sane check (co2 < 40000)`);
  const transactions: Set<string>[] = [];
  const spy: Db = {
    ...db,
    transaction: (fn, o) => {
      const devices = new Set<string>();
      transactions.push(devices);
      return db.transaction((tx) =>
        fn({
          sql: (strings, ...values) => {
            for (const v of values) {
              if (Array.isArray(v)) {
                for (const x of v) if (/^dev\d+$/.test(String(x))) devices.add(x);
              }
            }
            return tx.sql(strings, ...values);
          },
          query: (text, params) => tx.query(text, params),
          exec: (script) => tx.exec(script),
          copyIn: tx.copyIn,
        }), o);
    },
  };
  const batch: Decoded[] = [];
  for (let i = 0; i < 2000; i++) {
    batch.push(scd30(`dev${i % 40}`, T0 + Math.floor(i / 40), i === 777 ? 50000 : 400 + (i % 900)));
  }
  batch.push(scd30("dev3", T0, 400 + (3 % 900))); // an identical repeat of a reading of the batch
  batch.push(scd30("dev4", T0, 999)); // another value for a stored sensor and time
  // Part of the batch is stored already, as when one lane committed and another failed.
  // PostgreSQL: the default; PGlite (one lane by default) is asked for two.
  const writer = createBatchWriter(spy, {
    layouts: ["columnar", "flexible"],
    ...(db.kind === "pglite" ? { lanes: 2 } : {}),
  });
  await createBatchWriter(db, { layouts: ["columnar", "flexible"], lanes: 1 })
    .write(batch.filter((m) => m.kind === "reading" && m.device === "dev5"));
  transactions.length = 0;
  await writer.write(batch);
  // Two lanes (after the schema's own transaction, when there is one), disjoint in devices and
  // together the whole batch; then the lane with the refused reading isolates it.
  const [a, b] = transactions.filter((t) => t.size > 0);
  assertEquals([...a].filter((d) => b.has(d)), [], "a device in both lanes");
  assertEquals(a.size + b.size, 40);
  // Every reading once but the refused one (co2 50000), which is recorded with the conflict.
  assertEquals(await count(db, "scd30_measurements"), 1999);
  assertEquals(await count(db, "measurements"), 3 * 1999);
  const reasons = (await rows(db, `select reason from rejected_messages order by reason`))
    .map((r) => String(r.reason).split(":")[0]);
  assertEquals(reasons, ["conflicting duplicate", "database refused the message"]);
  // The rollups hold what the tables hold, in both layouts.
  await assertRollupsMatchTables(db);
  // A batch below two lanes' worth stays one transaction.
  transactions.length = 0;
  await writer.write(
    batch.slice(0, 700).map((m) => ({ ...m, time: new Date(m.time.getTime() + 3600_000) })),
  );
  assertEquals(transactions.length, 1);
});

Deno.test("createBatchWriter() keeps readings without timestamps received within one millisecond apart", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const topic = "devices/burst/sensors/scd30/data";
  // Receive times a microsecond apart, as the collector gives a burst of backlog.
  const burst = [0, 0.001, 0.002].map((us, i) =>
    decodeMessage({
      topic,
      payload: enc.encode(JSON.stringify({ value: { co2: 400 + i } })),
      receivedAt: NOW + us,
    })
  );
  await writer.write(burst.slice(0, 2));
  await writer.write(burst.slice(1)); // a replay of the second one, and the third
  assertEquals(
    await rows(db, `select co2, to_char(time, 'SS.US') as t from scd30_measurements order by time`),
    [{ co2: 400, t: "00.000000" }, { co2: 401, t: "00.000001" }, { co2: 402, t: "00.000002" }],
  );
  assertEquals(await count(db, "measurements"), 3);
});

Deno.test("createBatchWriter() neither repeats retained messages nor counts them as activity", async () => {
  await using db = await withTestDb();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const raw = (topic: string, text: string, receivedAt: number, retained = false) =>
    decodeMessage({ topic, payload: enc.encode(text), receivedAt, retained });
  const caps = JSON.stringify(CAPABILITIES);
  await writer.write([
    raw("devices/esp32-01/capabilities", caps, NOW),
    raw("devices/esp32-01/status", "offline", NOW + 1000),
  ]);
  const state = () =>
    rows(
      db,
      `select d.device_id, d.status, d.last_seen, count(e.*)::int as events
       from devices d left join device_events e using (device_id)
       group by 1, 2, 3 order by 1`,
    );
  const before = await state();
  // Each new subscription brings the retained copies again, hours later.
  for (const at of [NOW + 3_600_000, NOW + 7_200_000]) {
    await writer.write([
      raw("devices/esp32-01/capabilities", caps, at, true),
      raw("devices/esp32-01/status", `"offline"`, at, true),
    ]);
  }
  assertEquals(await state(), before);

  // A retained message that says something new is kept, still without moving last_seen.
  await writer.write([raw("devices/esp32-01/status", "online", NOW + 9_000_000, true)]);
  assertEquals(await state(), [{ ...before[0], status: "online", events: 3 }]);

  // A device known only from a retained message is registered, never seen.
  await writer.write([raw("devices/esp32-02/status", "offline", NOW + 9_000_000, true)]);
  const [, other] = await state();
  assertEquals(other, { device_id: "esp32-02", status: "offline", last_seen: null, events: 1 });
});
