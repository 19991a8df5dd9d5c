import { deepEqual, equal, match, ok } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { Db } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { loadServeConfig } from "../lib/config/mod.ts";
import { registerAll } from "../lib/mcp/tools/mod.ts";
import { createBatchWriter, decodeMessage } from "../lib/ingest/mod.ts";
import { DeviceModel } from "../lib/simulate/mod.ts";
import { ROOM_KINDS } from "../lib/simulate/_curves.ts";
import { capabilitiesPayload, dataPayloads } from "../lib/simulate/_payloads.ts";
import { AIR_T0, seedAir } from "./fixtures/air_seed.ts";
import { tempResults } from "./fixtures/readings_results.ts";

type Content = { type: string; text?: string }[];

async function connect(db: Db) {
  const results = await tempResults();
  const server = new McpServer({ name: "test", version: "0" });
  registerAll(server, { db, results, config: loadServeConfig({}) } as never);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "c", version: "0" });
  await Promise.all([server.connect(a), client.connect(b)]);
  await client.listTools(); // the client then checks structured results against outputSchema
  const call = async (name: string, args: Record<string, unknown>) => {
    const r = await client.callTool({ name, arguments: args });
    // deno-lint-ignore no-explicit-any
    return { ...r, s: r.structuredContent as any, text: (r.content as Content)[0]?.text ?? "" };
  };
  return {
    client,
    call,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
      await results[Symbol.asyncDispose]();
    },
  };
}

/** The simulator's own fleet: one board per room kind, an hour of readings every minute. */
async function seedFleet(db: Db, startMs: number): Promise<string[]> {
  const enc = new TextEncoder();
  const writer = createBatchWriter(db, { layouts: ["columnar", "flexible"] });
  const ids: string[] = [];
  for (const [i, room] of ROOM_KINDS.entries()) {
    const id = `esp32-${String(i + 1).padStart(2, "0")}`;
    ids.push(id);
    const model = new DeviceModel({ room, seed: "test", deviceKey: id, startMs });
    const batch = [decodeMessage({
      topic: `devices/${id}/capabilities`,
      payload: enc.encode(capabilitiesPayload({ deviceId: id, room, intervalS: 60 })),
      receivedAt: startMs,
    })];
    for (let k = 0; k < 60; k++) {
      const t = startMs + k * 60_000;
      const p = dataPayloads(model.read(t), t / 1000);
      for (const type of ["scd30", "bmp280"] as const) {
        batch.push(decodeMessage({
          topic: `devices/${id}/sensors/${type}/data`,
          payload: enc.encode(p[type]),
          receivedAt: t + 500,
        }));
      }
    }
    await writer.write(batch);
  }
  return ids;
}

Deno.test("rooms of the simulator's fleet can be named, and sensors list only what they report", async () => {
  await using db = await withTestDb();
  const start = Date.UTC(2024, 3, 1, 6, 0, 0);
  const ids = await seedFleet(db, start);
  await using c = await connect(db);

  // "bedroom" finds the board in the bedroom, whose sensors sit on the bedside table and shelf.
  const bedroom = await c.call("get_latest_readings", { location: "bedroom" });
  equal(bedroom.isError, undefined, bedroom.text);
  deepEqual(
    [...new Set(bedroom.s.readings.map((r: { placement: string }) => r.placement))].sort(),
    ["bedside table", "wardrobe shelf"],
  );
  ok(bedroom.s.readings.every((r: { room: string }) => r.room === "bedroom"));
  const shelf = await c.call("get_latest_readings", { location: "Wardrobe shelf" });
  deepEqual([...new Set(shelf.s.readings.map((r: { sensor_type: string }) => r.sensor_type))], [
    "bmp280",
  ]);
  const living = await c.call("get_latest_readings", { location: "living room" });
  ok(
    living.s.readings.length > 0 &&
      living.s.readings.every((r: { room: string }) => r.room === "living_room"),
  );
  const unknown = await c.call("get_latest_readings", { location: "attic" });
  equal(unknown.isError, true);
  match(unknown.text, /bedroom \(bedside table, wardrobe shelf\)/);

  // A BMP280 never reports humidity: not listed, and the device's humidity is unambiguous.
  const { s: listed } = await c.call("list_sensors", {});
  const bmp = listed.sensors.filter((s: { sensor_type: string }) => s.sensor_type === "bmp280");
  equal(bmp.length, ROOM_KINDS.length);
  for (const s of bmp) {
    deepEqual(s.metrics.map((m: { metric: string }) => m.metric), ["pressure", "temperature"]);
  }
  const res = await c.client.readResource({ uri: `sensor://${bmp[0].sensor_id}` });
  const details = JSON.parse(String((res.contents[0] as { text: string }).text));
  deepEqual(details.metrics.map((m: { metric: string }) => m.metric), ["pressure", "temperature"]);
  const h = await c.call("get_sensor_history", {
    device: ids[0],
    metric: "humidity",
    start: new Date(start).toISOString(),
    end: new Date(start + 3_600_000).toISOString(),
    max_points: 12,
  });
  equal(h.isError, undefined, h.text);
  equal(h.s.sensor.sensor_type, "scd30");
  // one reading a minute: the minute rollup would condense nothing, so raw readings answer
  equal(h.s.source, "raw");
  equal(h.s.points.reduce((n: number, p: { count: number }) => n + p.count, 0), 60);

  // Completions offer rooms and placements alike.
  const done = await c.client.complete({
    ref: { type: "ref/prompt", name: "air_quality_report" },
    argument: { name: "location", value: "bed" },
  });
  deepEqual(done.completion.values, ["bedroom", "bedside table"]);
  const metrics = await c.client.complete({
    ref: { type: "ref/prompt", name: "find_anomalies" },
    argument: { name: "metric", value: "" },
  });
  deepEqual(metrics.completion.values, ["co2", "humidity", "pressure", "temperature"]);

  // The summary of the bedroom names its units, period and sensors.
  const sum = await c.call("get_air_summary", {
    location: "bedroom",
    start: new Date(start).toISOString(),
    end: new Date(start + 3_600_000).toISOString(),
  });
  equal(sum.isError, undefined, sum.text);
  deepEqual(sum.s.summary.period.minutes, 60);
  deepEqual(
    sum.s.summary.sensors.map((s: { placement: string }) => s.placement).sort(),
    ["bedside table", "wardrobe shelf"],
  );
  const co2 = sum.s.summary.metrics.find((m: { metric: string }) => m.metric === "co2");
  equal(co2.unit, "ppm");
  equal(co2.readings, 60);
  match(sum.text, /co2 \(sensor \d+\): avg [\d.,]+ ppm/);
});

Deno.test("the air tools answer with structured output from a small hand-checked set", async () => {
  await using db = await withTestDb();
  await seedAir(db);
  await using c = await connect(db);
  const period = { start: AIR_T0.toISOString(), end: "2024-01-01T03:00:00Z" };

  const { tools } = await c.client.listTools();
  for (
    const name of ["get_air_summary", "compare_air", "get_daily_profile", "check_data_quality"]
  ) {
    const tool = tools.find((x: { name: string }) => x.name === name);
    ok(tool?.outputSchema, name);
    equal(tool.annotations?.readOnlyHint, true);
    for (const [field, schema] of Object.entries(tool.inputSchema.properties ?? {})) {
      ok((schema as { description?: string }).description, `${name}.${field} is described`);
    }
  }

  const sum = await c.call("get_air_summary", { location: "bedroom", ...period });
  const co2 = sum.s.summary.metrics.find((m: { metric: string }) => m.metric === "co2");
  deepEqual(co2.minutes_above, { "1000": 90, "1400": 30 });
  const temp = sum.s.summary.metrics.find((m: { metric: string }) => m.metric === "temperature");
  deepEqual(temp.comfort, { low: 19, high: 23, below_min: 60, within_min: 60, above_min: 60 });
  equal(sum.s.summary.dew_point.unit, "°C");

  const cmp = await c.call("compare_air", {
    location_a: "bedroom",
    start_a: period.start,
    end_a: "2024-01-01T01:00:00Z",
    start_b: "2024-01-01T01:00:00Z",
    end_b: "2024-01-01T02:00:00Z",
  });
  equal(cmp.isError, undefined, cmp.text);
  const d = cmp.s.differences.find((x: { metric: string }) => x.metric === "co2");
  deepEqual([d.avg, d.minutes_outside], [400, { above_1000: 60, above_1400: 0 }]);

  const prof = await c.call("get_daily_profile", { location: "bedroom", metric: "co2", ...period });
  deepEqual(prof.s.hours.map((x: { hour: number; avg: number }) => [x.hour, x.avg]), [
    [0, 800],
    [1, 1200],
    [2, 1200],
  ]);
  const badTz = await c.call("get_daily_profile", {
    location: "bedroom",
    metric: "co2",
    timezone: "Nowhere/Else",
  });
  equal(badTz.isError, true);
  match(badTz.text, /Unknown time zone/);

  const q = await c.call("check_data_quality", { location: "office", ...period });
  deepEqual(q.s.gaps, [{
    sensor_id: 3,
    from: "2024-01-01T01:00:00.000Z",
    to: "2024-01-01T02:00:00.000Z",
    minutes: 60,
  }]);
  equal(q.s.implausible.length, 1);
  match(q.text, /sensor 3: 2024-01-01T01:00:00.000Z → 2024-01-01T02:00:00.000Z \(60 min\)/);

  const nowhere = await c.call("get_air_summary", { location: "garage", ...period });
  equal(nowhere.isError, true);
  match(nowhere.text, /Known rooms/);
});
