import { deepEqual, equal, match, ok } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Db, Queryable } from "../lib/db/mod.ts";
import { buildQuery } from "../lib/db/ident.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { loadServeConfig } from "../lib/config/mod.ts";
import type { ResultStore } from "../lib/mcp/deps.ts";
import { registerGetLatestReadingsTool } from "../lib/mcp/tools/get_latest_readings.ts";
import { registerGetSensorHistoryTool } from "../lib/mcp/tools/get_sensor_history.ts";
import { registerResources } from "../lib/mcp/resources.ts";
import { registerPrompts } from "../lib/mcp/prompts.ts";
import { BUCKET_ORIGIN, latestReadings, sensorHistory } from "../lib/readings/mod.ts";
import { seedReadings } from "./fixtures/readings_seed.ts";
import { tempResults } from "./fixtures/readings_results.ts";

type Content = { type: string; text?: string }[];
type Reading = {
  device_id: string;
  sensor_id: number;
  sensor_type: string;
  location: string | null;
  metric: string;
  value: number;
  unit: string | null;
  time: string;
  age_s: number;
  stale: boolean;
};
type Point = { time: string; avg: number; min: number; max: number; count: number };
type History = {
  query_id: string;
  bucket: string;
  bucket_seconds: number;
  sensor: { sensor_id: number; device_id: string; sensor_type: string };
  metric: string;
  unit: string | null;
  start: string;
  end: string;
  points: Point[];
};

async function connect(db: Db, results: ResultStore, env: Record<string, string> = {}) {
  const deps = { db, results, config: loadServeConfig(env) };
  const server = new McpServer({ name: "test", version: "0" });
  registerGetLatestReadingsTool(server, deps);
  registerGetSensorHistoryTool(server, deps);
  registerResources(server, deps);
  registerPrompts(server, deps);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "c", version: "0" });
  await Promise.all([server.connect(a), client.connect(b)]);
  await client.listTools(); // the client then checks structured results against outputSchema
  return {
    client,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
    },
  };
}

/** A Db that remembers every statement it runs, so a test can EXPLAIN exactly those. */
function recording(db: Db): { db: Db; statements: { text: string; params: unknown[] }[] } {
  const statements: { text: string; params: unknown[] }[] = [];
  const query: Queryable["query"] = (text, params = []) => {
    statements.push({ text, params });
    return db.query(text, params);
  };
  const wrapped: Db = {
    kind: db.kind,
    query,
    sql: async (strings, ...values) => {
      const q = buildQuery(strings, values);
      // deno-lint-ignore no-explicit-any
      return (await query<any>(q.text, q.params)).rows;
    },
    exec: (script) => db.exec(script),
    transaction: (fn, opts) => db.transaction(fn, opts),
    close: () => db.close(),
  };
  return { db: wrapped, statements };
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));

Deno.test("readings tools, resources and prompts answer from over a million readings", async (t) => {
  await using db = await withTestDb();
  const seededAt = new Date();
  const t0 = await seedReadings(db, seededAt);
  await using results = await tempResults();
  await using c = await connect(db, results);
  const call = async (name: string, args: Record<string, unknown>) => {
    const r = await c.client.callTool({ name, arguments: args });
    return { ...r, text: (r.content as Content)[0]?.text ?? "" };
  };

  await t.step(
    "both tools are read-only, describe every input and declare their output",
    async () => {
      const { tools } = await c.client.listTools();
      for (const name of ["get_latest_readings", "get_sensor_history"]) {
        const tool = tools.find((x: { name: string }) => x.name === name);
        ok(tool, name);
        equal(tool.annotations?.readOnlyHint, true);
        ok(tool.outputSchema, `${name} has an outputSchema`);
        match(tool.description ?? "", /without writing SQL/);
        for (const [field, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
          ok((schema as { description?: string }).description, `${name}.${field} is described`);
        }
      }
    },
  );

  await t.step(
    "get_latest_readings gives every sensor's newest values with units and age",
    async () => {
      const r = await call("get_latest_readings", {});
      equal(r.isError, undefined);
      const readings = (r.structuredContent as { readings: Reading[] }).readings;
      // Independent: the row at each sensor's max(time), per layout.
      const columnar = await db.sql<{ sensor_id: number; time: Date; co2: number }>`
      select m.sensor_id, m.time, m.co2 from scd30_measurements m
      join (select sensor_id, max(time) as time from scd30_measurements group by sensor_id) x
        using (sensor_id, time)
      order by m.sensor_id`;
      equal(columnar.length, 2);
      for (const row of columnar) {
        const got = readings.find((x) => x.sensor_id === row.sensor_id && x.metric === "co2");
        ok(got, `co2 of sensor ${row.sensor_id} missing`);
        equal(got.value, row.co2);
        equal(got.unit, "ppm");
        equal(got.time, row.time.toISOString());
      }
      const office = readings.find((x) => x.sensor_id === 1 && x.metric === "co2")!;
      ok(office.age_s >= 40 && office.age_s <= 40 + (Date.now() - t0.getTime()) / 1000 + 1);
      deepEqual(
        readings.filter((x) => x.sensor_id === 2).map((x) => [x.metric, x.unit]),
        [["pressure", "hPa"], ["temperature", "°C"]], // the BMP280 has no humidity
      );
      const garage = await db.sql<{ metric_type: string; value: number; time: Date }>`
      select metric_type, value, time from measurements
      where sensor_id = 4 and time = (select max(time) from measurements where sensor_id = 4)
      order by metric_type`;
      deepEqual(
        readings.filter((x) => x.sensor_id === 4).map((x) => [x.metric, x.value, x.time]),
        garage.map((g) => [g.metric_type, g.value, g.time.toISOString()]),
      );
      equal(readings.find((x) => x.sensor_id === 5)?.unit, null);
      deepEqual(
        [...new Set(readings.filter((x) => x.stale).map((x) => x.sensor_id))],
        [6],
        "only the cellar sensor is older than INACTIVITY_THRESHOLD (300 s)",
      );
      match(r.text, /cellar-1 named "Cellar", at "Cellar", bmp280 \(sensor 6\): .*2 h ago .*stale/);
      match(r.text, new RegExp(`CO2 ${office.value} ppm`));
      match(
        r.text,
        /office-1 named "Office Monitor", at "Office", scd30 \(sensor 1\): CO2 .*, \d+ s ago/,
      );
    },
  );

  await t.step(
    "get_latest_readings filters by device name or id and location, any case",
    async () => {
      const ids = async (args: Record<string, unknown>) => {
        const r = await call("get_latest_readings", args);
        equal(r.isError, undefined, r.text);
        const rs = (r.structuredContent as { readings: Reading[] }).readings;
        return [...new Set(rs.map((x) => x.sensor_id))];
      };
      deepEqual(await ids({ device: "office monitor" }), [2, 1]);
      deepEqual(await ids({ device: "GARAGE-1" }), [4]);
      deepEqual(await ids({ location: "BEDROOM" }), [3, 5]);
      deepEqual(await ids({ location: "bed" }), [3, 5]);
      deepEqual(await ids({ device: "office-1", location: "office" }), [2, 1]);
    },
  );

  await t.step(
    "get_latest_readings answers an unknown device or location with the choices",
    async () => {
      const dev = await call("get_latest_readings", { device: "attic-9" });
      equal(dev.isError, true);
      match(dev.text, /Unknown device "attic-9"/);
      match(dev.text, /office-1 \("Office Monitor"\)/);
      match(dev.text, /garage-1/);
      const loc = await call("get_latest_readings", { location: "Attic" });
      equal(loc.isError, true);
      match(
        loc.text,
        /Unknown location "Attic". Known rooms \(and where their sensors sit\): Bedroom, Cellar, Garage, Office/,
      );
    },
  );

  await t.step(
    "latest readings use the (sensor_id, time) indexes, not a scan of the big table",
    async () => {
      const [{ n }] = await db.sql<
        { n: number }
      >`select count(*)::int as n from scd30_measurements`;
      ok(n >= 1_000_000, `only ${n} rows`);
      const rec = recording(db);
      await latestReadings(rec.db);
      const measured = rec.statements.filter((s) => /measurements\b/.test(s.text));
      ok(measured.length >= 2, "expected a columnar and a flexible lookup");
      for (const s of measured) {
        const plan = (await db.query(`explain ${s.text}`, s.params)).rows
          .map((r) => String(Object.values(r)[0])).join("\n");
        match(plan, /Index (Only )?Scan/, plan);
        ok(!/Seq Scan on \w*measurements/.test(plan), `sequential scan in:\n${plan}`);
      }
    },
  );

  await t.step(
    "the history aggregate reads only the sensor's period through the primary key",
    async () => {
      const rec = recording(db);
      await sensorHistory(rec.db, {
        sensorId: 1,
        metric: "co2",
        start: new Date(t0.getTime() - 7 * 86_400_000),
        end: t0,
        maxPoints: 500,
      });
      const agg = rec.statements.filter((s) => /date_bin/.test(s.text));
      equal(agg.length, 1);
      const plan = (await db.query(`explain ${agg[0].text}`, agg[0].params)).rows
        .map((r) => String(Object.values(r)[0])).join("\n");
      match(plan, /Index Cond: \(\(sensor_id = 1\) AND \("time" >=/, plan);
      match(plan, /HashAggregate/, plan);
      ok(!/Seq Scan on \w*measurements/.test(plan), `sequential scan in:\n${plan}`);
    },
  );

  let saved: History | undefined;
  await t.step(
    "get_sensor_history matches the same buckets computed independently in SQL",
    async () => {
      const before = Date.now();
      const r = await call("get_sensor_history", { sensor_id: 1, metric: "co2", start: "-7d" });
      equal(r.isError, undefined, r.text);
      const h = r.structuredContent as History;
      saved = h;
      equal(h.bucket, "30m");
      equal(h.unit, "ppm");
      ok(Math.abs(Date.parse(h.start) - (before - 7 * 86_400_000)) < 5000, "start is 7 days ago");
      ok(Math.abs(Date.parse(h.end) - before) < 5000, "end is now");
      ok(h.points.length <= 500 && h.points.length > 300, `${h.points.length} points`);
      const expected = await db.sql<
        { bucket: Date; avg: number; min: number; max: number; n: number }
      >`
      select to_timestamp(floor(extract(epoch from time - ${BUCKET_ORIGIN}::timestamptz) / 1800)
               * 1800 + extract(epoch from ${BUCKET_ORIGIN}::timestamptz)) as bucket,
             avg(co2) as avg, min(co2) as min, max(co2) as max, count(*)::int as n
      from scd30_measurements
      where sensor_id = 1 and time >= ${new Date(h.start)} and time < ${new Date(h.end)}
      group by 1 order by 1`;
      equal(h.points.length, expected.length);
      h.points.forEach((p, i) => {
        const e = expected[i];
        equal(p.time, new Date(e.bucket).toISOString());
        equal(p.count, e.n);
        equal(p.min, e.min);
        equal(p.max, e.max);
        ok(close(p.avg, Number(e.avg)), `avg ${p.avg} vs ${e.avg}`);
      });
      // Both layouts hold the newest readings of sensor 1: they are counted once.
      equal(h.points.reduce((s, p) => s + p.count, 0), expected.reduce((s, e) => s + e.n, 0));
      match(r.text, new RegExp(`query_id: ${h.query_id}`));
    },
  );

  await t.step("get_sensor_history honours max_points and refuses more than 5000", async () => {
    for (const [start, maxPoints] of [["-30d", 10], ["-2w", 5000], ["-180d", 500]] as const) {
      const r = await call("get_sensor_history", {
        device: "bedroom-1",
        sensor_type: "scd30",
        metric: "temperature",
        start,
        max_points: maxPoints,
      });
      equal(r.isError, undefined, r.text);
      const h = r.structuredContent as History;
      ok(h.points.length <= maxPoints, `${h.points.length} > ${maxPoints} for ${start}`);
      ok(h.points.length >= maxPoints / 10, `only ${h.points.length} points for ${start}`);
      equal(h.sensor.sensor_id, 3);
    }
    const years = await call("get_sensor_history", {
      sensor_id: 5,
      metric: "tvoc",
      start: "2020-01-01",
    });
    equal((years.structuredContent as History).bucket, "7d");
    const tooMany = await call("get_sensor_history", {
      sensor_id: 1,
      metric: "co2",
      max_points: 6000,
    });
    equal(tooMany.isError, true);
    match(tooMany.text, /max_points/);
  });

  await t.step("get_sensor_history reads absolute and relative times alike", async () => {
    const start = new Date(t0.getTime() - 3 * 3600_000);
    const a = await call("get_sensor_history", {
      sensor_id: 3,
      metric: "humidity",
      start: start.toISOString().replace("Z", "+00:00"),
      end: Math.floor(t0.getTime() / 1000),
    });
    const h = a.structuredContent as History;
    equal(h.start, start.toISOString());
    equal(h.end, t0.toISOString());
    const [{ n }] = await db.sql<{ n: number }>`
      select count(*)::int as n from scd30_measurements
      where sensor_id = 3 and time >= ${start} and time < ${t0}`;
    equal(h.points.reduce((s, p) => s + p.count, 0), n);
    const bad = await call("get_sensor_history", {
      sensor_id: 3,
      metric: "co2",
      start: "last week",
    });
    equal(bad.isError, true);
    match(bad.text, /start: Cannot parse time "last week": expected ISO 8601.*-24h/);
    const reversed = await call("get_sensor_history", {
      sensor_id: 3,
      metric: "co2",
      start: "-1h",
      end: "-2h",
    });
    equal(reversed.isError, true);
    match(reversed.text, /must be before the end/);
  });

  await t.step(
    "get_sensor_history names the valid choices for unknown or ambiguous input",
    async () => {
      const metric = await call("get_sensor_history", { sensor_id: 1, metric: "co3" });
      equal(metric.isError, true);
      match(metric.text, /Unknown metric "co3".*Its metrics: co2, humidity, temperature/);
      const sensor = await call("get_sensor_history", { sensor_id: 99, metric: "co2" });
      equal(sensor.isError, true);
      match(sensor.text, /Unknown sensor_id 99. Known sensors: 1 \(scd30 on office-1/);
      const device = await call("get_sensor_history", { device: "attic", metric: "co2" });
      equal(device.isError, true);
      match(device.text, /Unknown device "attic".*bedroom-1/);
      const both = await call("get_sensor_history", {
        device: "Office Monitor",
        metric: "temperature",
      });
      equal(both.isError, true);
      match(both.text, /several sensors.*bmp280 \(sensor_id 2\).*scd30 \(sensor_id 1\)/);
      const type = await call("get_sensor_history", {
        device: "office-1",
        sensor_type: "bme680",
        metric: "temperature",
      });
      equal(type.isError, true);
      match(type.text, /no "bme680" sensor. Its sensor types: bmp280, scd30/);
      const picked = await call("get_sensor_history", {
        device: "Office Monitor",
        sensor_type: "BMP280",
        metric: "pressure",
        start: "-1d",
      });
      equal(picked.isError, undefined, picked.text);
      equal((picked.structuredContent as History).sensor.sensor_id, 2);
      equal((picked.structuredContent as History).unit, "hPa");
    },
  );

  await t.step(
    "get_sensor_history finds data held only in the flexible layout or a new table",
    async () => {
      const r = await call("get_sensor_history", {
        device: "garage-1",
        metric: "co2",
        start: "-2d",
      });
      equal(r.isError, undefined, r.text);
      const h = r.structuredContent as History;
      equal(h.sensor.sensor_id, 4);
      const [e] = await db.sql<{ n: number; avg: number; min: number; max: number }>`
      select count(*)::int as n, avg(value) as avg, min(value) as min, max(value) as max
      from measurements
      where sensor_id = 4 and metric_type = 'co2'
        and time >= ${new Date(h.start)} and time < ${new Date(h.end)}`;
      ok(e.n > 2000);
      equal(h.points.reduce((s, p) => s + p.count, 0), e.n);
      equal(Math.min(...h.points.map((p) => p.min)), e.min);
      equal(Math.max(...h.points.map((p) => p.max)), e.max);
      const avg = h.points.reduce((s, p) => s + p.avg * p.count, 0) / e.n;
      ok(Math.abs(avg - Number(e.avg)) < 1e-6, `${avg} vs ${e.avg}`);
      const tvoc = await call("get_sensor_history", { sensor_id: 5, metric: "tvoc", start: "-1d" });
      equal(tvoc.isError, undefined, tvoc.text);
      const th = tvoc.structuredContent as History;
      equal(th.unit, null);
      equal(th.points.reduce((s, p) => s + p.count, 0), 1000);
    },
  );

  await t.step({
    name: "a history running past QUERY_TIMEOUT_S is cancelled with a clear error",
    ignore: !db.url, // in-memory PGlite cannot cancel a running statement
    fn: async () => {
      await using slow = await connect(db, results, { QUERY_TIMEOUT_S: "0.2" });
      // Another session holds the table, so the aggregation waits past the limit.
      const r = await db.transaction(async (tx) => {
        await tx.exec("lock table scd30_measurements in access exclusive mode");
        return await slow.client.callTool({
          name: "get_sensor_history",
          arguments: { sensor_id: 1, metric: "co2" },
        });
      });
      equal(r.isError, true);
      match(
        (r.content as Content)[0].text!,
        /cancelled after 0.2 s \(QUERY_TIMEOUT_S\).*shorter period/,
      );
    },
  });

  await t.step("resources list and read the schema, each sensor and cached results", async () => {
    const { resources } = await c.client.listResources();
    const uris = resources.map((r: { uri: string }) => r.uri);
    ok(uris.includes("schema://database"));
    for (const id of [1, 2, 3, 4, 5, 6]) ok(uris.includes(`sensor://${id}`), `sensor://${id}`);
    ok(saved && uris.includes(`query://${saved.query_id}`), "the saved history is listed");

    const schema = await c.client.readResource({ uri: "schema://database" });
    const md = (schema.contents[0] as { text: string }).text;
    match(md, /## scd30_measurements \(~1,0\d\d,\d{3} rows\)/);
    match(md, /- co2 double precision — ppm, CO2 concentration/);
    match(md, /## sgp30_measurements/);

    const sensor = await c.client.readResource({ uri: "sensor://4" });
    const s = JSON.parse((sensor.contents[0] as { text: string }).text);
    equal(s.device.device_name, "Garage");
    deepEqual(s.metrics.find((m: { metric: string }) => m.metric === "co2"), {
      metric: "co2",
      unit: "ppm",
      layouts: ["flexible"],
    });
    equal(s.first_reading, new Date(t0.getTime() - 20_000 - 9999 * 60_000).toISOString());
    equal(s.latest.length, 3);
    const unknown = await c.client.readResource({ uri: "sensor://99" }).then(
      () => "",
      (e: Error) => e.message,
    );
    match(unknown, /Unknown sensor_id 99/);

    const csv = await c.client.readResource({ uri: `query://${saved!.query_id}` });
    equal(csv.contents[0].mimeType, "text/csv");
    const lines = (csv.contents[0] as { text: string }).text.trimEnd().split("\n");
    equal(lines[0], "time,avg,min,max,count");
    equal(lines.length, saved!.points.length + 1);
    equal(
      lines[1],
      `${saved!.points[0].time},${saved!.points[0].avg},${saved!.points[0].min},` +
        `${saved!.points[0].max},${saved!.points[0].count}`,
    );
  });

  await t.step("a query resource larger than 1 MB is cut at a line end with a note", async () => {
    const rows = Array.from({ length: 40_000 }, (_, i) => [i, "x".repeat(30)]);
    const big = await results.saveCsv(["i", "pad"], rows);
    ok(big.bytes > 1024 * 1024);
    const r = await c.client.readResource({ uri: `query://${big.queryId}` });
    const text = (r.contents[0] as { text: string }).text;
    ok(new TextEncoder().encode(text).length <= 1024 * 1024);
    ok(text.endsWith("\n"));
    match(text.split("\n").at(-2)!, /^\d+,x{30}$/);
    match(
      (r.contents[1] as { text: string }).text,
      /Only the first \d+ of \d+ bytes.*analyze_data/,
    );
    const gone = await c.client.readResource({ uri: "query://nope" }).then(
      () => "",
      (e: Error) => e.message,
    );
    match(gone, /Unknown or expired query_id "nope"/);
  });

  await t.step("prompts are listed, complete locations and guide through the tools", async () => {
    const { prompts } = await c.client.listPrompts();
    deepEqual(prompts.map((p: { name: string }) => p.name).sort(), [
      "air_quality_report",
      "compare_rooms",
      "find_anomalies",
    ]);
    const report = await c.client.getPrompt({
      name: "air_quality_report",
      arguments: { location: "Bedroom", period: "7d" },
    });
    const text = (report.messages[0].content as { text: string }).text;
    match(text, /"Bedroom" from 7d/);
    match(text, /get_latest_readings[\s\S]*get_sensor_history[\s\S]*create_plot/);
    match(text, /above 1000 ppm stuffy/);
    match(text, /above 1400 ppm poor/);
    match(text, /40–60 %RH comfortable/);
    const anomalies = await c.client.getPrompt({
      name: "find_anomalies",
      arguments: { metric: "humidity" },
    });
    match(
      (anomalies.messages[0].content as { text: string }).text,
      /humidity on every sensor from 7d/,
    );
    const compare = await c.client.getPrompt({
      name: "compare_rooms",
      arguments: { location_a: "Office", location_b: "Bedroom" },
    });
    match(
      (compare.messages[0].content as { text: string }).text,
      /Compare co2 between "Office" and "Bedroom"/,
    );
    const done = await c.client.complete({
      ref: { type: "ref/prompt", name: "compare_rooms" },
      argument: { name: "location_b", value: "bed" },
    });
    deepEqual(done.completion.values, ["Bedroom"]);
  });
});
