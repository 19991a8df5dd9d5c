/**
 * Readings benchmark: p50 latency of `get_latest_readings` (every sensor) and of
 * `get_sensor_history` (7 days of one CO2 sensor at 30 s intervals, 500 points) on a
 * 1,000,000-row columnar table, called through the SDK client over an in-memory transport so the
 * figure includes the tool layer (validation, saving the CSV). PostgreSQL when DATABASE_URL is
 * set (a fresh database, dropped after), else the embedded worker-backed PGlite as
 * `deno task serve` runs it.
 *
 * @module
 */
import { loadServeConfig } from "../lib/config/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { registerGetLatestReadingsTool } from "../lib/mcp/tools/get_latest_readings.ts";
import { registerGetSensorHistoryTool } from "../lib/mcp/tools/get_sensor_history.ts";
import { seedReadings } from "../tests/fixtures/readings_seed.ts";
import { tempResults } from "../tests/fixtures/readings_results.ts";
import { type Timings, timings } from "./_stats.ts";
import { connectTools } from "./_tool_client.ts";

const RUNS = 30;
const WARMUP = 3;
const TARGET_MS = 20;

/** Runs the readings benchmark and prints p50 latencies against the 20 ms target. */
export async function run(_args: string[]): Promise<void> {
  await using db = await withTestDb({ killable: true });
  await using results = await tempResults();
  const seedStart = performance.now();
  await seedReadings(db, new Date());
  const [{ n }] = await db.sql<{ n: number }>`select count(*)::int as n from scd30_measurements`;
  console.log(
    `seeded ${n.toLocaleString("en-US")} scd30 rows (+ bmp280, flexible, sgp30) on ` +
      `${db.kind} in ${((performance.now() - seedStart) / 1000).toFixed(1)} s`,
  );

  const deps = { db, results, config: loadServeConfig({}) };
  const client = await connectTools(deps, [
    registerGetLatestReadingsTool,
    registerGetSensorHistoryTool,
  ]);
  try {
    const call = (name: string, args: Record<string, unknown>) => client.call(name, args);
    let sensors = 0;
    const latest = await timings(async () => {
      const r = await call("get_latest_readings", {});
      const rows = (r.structuredContent as { readings: { sensor_id: number }[] }).readings;
      sensors = new Set(rows.map((x) => x.sensor_id)).size;
    }, { runs: RUNS, warmup: WARMUP });
    let points = 0;
    const history = await timings(async () => {
      const r = await call("get_sensor_history", {
        sensor_id: 1,
        metric: "co2",
        start: "-7d",
        max_points: 500,
      });
      points = (r.structuredContent as { points: unknown[] }).points.length;
    }, { runs: RUNS, warmup: WARMUP });
    const fmt = (t: Timings) =>
      `p50 ${t.p50.toFixed(1)} ms (${
        (t.p50 / TARGET_MS).toFixed(2)
      }x of ${TARGET_MS} ms target), ` +
      `p90 ${t.p90.toFixed(1)} ms`;
    console.log(`get_latest_readings, all ${sensors} sensors (${RUNS} runs): ${fmt(latest)}`);
    console.log(
      `get_sensor_history, 7 days of 30 s readings → ${points} points (${RUNS} runs): ` +
        fmt(history),
    );
  } finally {
    await client.close();
  }
}

if (import.meta.main) await run(Deno.args);
