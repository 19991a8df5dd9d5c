/**
 * MCP benchmark: p50/p99 latency of `list_sensors` and of `execute_sql_query` returning 100 rows
 * from a 1,000,000-row measurement table, over HTTP with the SDK client, with 1 and with 20
 * concurrent clients, against the real server (`main.ts`) in its own process. PostgreSQL when
 * DATABASE_URL is set (a fresh database, dropped after), else the embedded PGlite as
 * `deno task serve` runs it.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { migrate, openDb, type Queryable } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { taskArgs } from "../tests/fixtures/task_args.ts";

const ROWS = 1_000_000;
/** Sensors (and devices) the benchmark seeds. */
export const SENSORS = 5;
const TARGET_P50_MS = 15;
const ROOT = fileURLToPath(new URL("..", import.meta.url));

type CallResult = { isError?: boolean; content?: unknown; structuredContent?: unknown };

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

async function measure(
  clients: Client[],
  callsPerClient: number,
  call: (c: Client, i: number) => Promise<unknown>,
): Promise<{ p50: number; p99: number; perSecond: number }> {
  const times: number[] = [];
  const start = performance.now();
  await Promise.all(clients.map(async (c, ci) => {
    for (let i = 0; i < callsPerClient; i++) {
      const t = performance.now();
      await call(c, ci * callsPerClient + i);
      times.push(performance.now() - t);
    }
  }));
  const wall = performance.now() - start;
  times.sort((a, b) => a - b);
  return {
    p50: percentile(times, 0.5),
    p99: percentile(times, 0.99),
    perSecond: times.length / (wall / 1000),
  };
}

/** Seeds the benchmark devices and `scd30_measurements`; returns the seconds it took. */
export async function seed(db: Queryable): Promise<number> {
  const t = performance.now();
  await db.exec(`
    insert into devices (device_id, device_name, location, status)
      select 'bench-' || g, 'Bench board ' || g, 'room ' || g, 'online'
      from generate_series(1, ${SENSORS}) g;
    insert into sensors (sensor_id, device_id, sensor_type, last_seen)
      select g, 'bench-' || g, 'scd30', now() from generate_series(1, ${SENSORS}) g;
    insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
      select timestamptz '2024-01-01' + (g / ${SENSORS}) * interval '10 seconds',
             g % ${SENSORS} + 1, 400 + (g % 997), 20 + (g % 50) / 10.0, 40 + (g % 30)
      from generate_series(0, ${ROWS - 1}) g;
    analyze scd30_measurements;`);
  return (performance.now() - t) / 1000;
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = l.addr as Deno.NetAddr;
  l.close();
  return port;
}

async function waitReady(url: string, child: Deno.ChildProcess, exited: () => boolean) {
  for (let i = 0; i < 600; i++) {
    if (exited()) throw new Error("the server exited during start-up");
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill("SIGKILL");
  throw new Error(`the server did not answer ${url} within 60 s`);
}

/** Runs the MCP benchmark and prints latencies against the 15 ms p50 target. */
export async function run(_args: string[]): Promise<void> {
  const external = Deno.env.get("DATABASE_URL") !== undefined;
  await using testDb = external ? await withTestDb() : undefined;
  const dataDir = await Deno.makeTempDir({ prefix: "bench-mcp-" });
  const clients: Client[] = [];
  let child: Deno.ChildProcess | undefined;
  let drain: Promise<void> | undefined;
  try {
    let seedS: number;
    if (testDb) {
      seedS = await seed(testDb);
    } else {
      // Seed the embedded database on disk, then hand it to the server process.
      const db = await openDb({ databaseUrl: undefined, dataDir });
      try {
        await migrate(db);
        seedS = await seed(db);
      } finally {
        await db.close();
      }
    }
    const port = freePort();
    const env: Record<string, string> = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      DATA_DIR: dataDir,
      PORT: String(port),
      MQTT_LISTEN: `127.0.0.1:${freePort()}`,
      SANDBOX_ENGINE: "off",
      ...(testDb?.url ? { DATABASE_URL: testDb.url } : {}),
    };
    const denoDir = Deno.env.get("DENO_DIR");
    if (denoDir) env.DENO_DIR = denoDir;
    child = new Deno.Command(Deno.execPath(), {
      args: taskArgs("serve", dataDir),
      cwd: ROOT,
      env,
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    // Kept for the error message when start-up fails; drained so the pipe never blocks.
    let stderr = "";
    const decoder = new TextDecoder();
    const draining = (async () => {
      for await (const chunk of child!.stderr) {
        stderr = (stderr + decoder.decode(chunk, { stream: true })).slice(-4000);
      }
    })();
    let exited = false;
    child.status.then(() => exited = true);
    drain = draining;
    try {
      await waitReady(`http://127.0.0.1:${port}/healthz`, child, () => exited);
    } catch (error) {
      throw new Error(`${(error as Error).message}:\n${stderr}`);
    }

    for (let i = 0; i < 20; i++) {
      const c = new Client({ name: `bench-${i}`, version: "1.0.0" });
      await c.connect(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)),
      );
      clients.push(c);
    }
    const listSensors = (c: Client) =>
      c.callTool({ name: "list_sensors", arguments: {} }).then((r: CallResult) => {
        const n = (r.structuredContent as { sensors: unknown[] }).sensors.length;
        if (n !== SENSORS) throw new Error(`expected ${SENSORS} sensors, got ${n}`);
      });
    const sql = (c: Client, i: number) =>
      c.callTool({
        name: "execute_sql_query",
        arguments: {
          // A different window each call, so no cache anywhere can answer it.
          sql: `select time, co2, temperature, humidity from scd30_measurements
                where sensor_id = ${(i % SENSORS) + 1}
                  and time >= timestamptz '2024-01-01' + interval '${(i * 37) % 5000} minutes'
                order by time limit 100`,
        },
      }).then((r: CallResult) => {
        if (r.isError) throw new Error(`execute_sql_query failed: ${JSON.stringify(r.content)}`);
        const n = (r.structuredContent as { row_count: number }).row_count;
        if (n !== 100) throw new Error(`expected 100 rows, got ${n}`);
      });
    // Warm-up: JIT, connection pool, plan caches.
    await measure(clients.slice(0, 1), 20, listSensors);
    await measure(clients.slice(0, 1), 20, sql);

    console.log(
      `mcp: ${external ? "postgres" : "pglite"}, scd30_measurements ` +
        `${ROWS.toLocaleString("en-US")} rows (seeded in ${seedS.toFixed(1)} s); ` +
        `deno task serve in its own process, SDK clients over HTTP, ` +
        `${navigator.hardwareConcurrency} cores shared`,
    );
    for (
      const [name, call] of [
        ["list_sensors", listSensors],
        ["execute_sql_query 100 rows", sql],
      ] as const
    ) {
      const one = await measure(clients.slice(0, 1), 100, call);
      const many = await measure(clients, 10, call);
      console.log(
        `  ${name.padEnd(27)} 1 client  : p50 ${ms(one.p50)} p99 ${ms(one.p99)} ` +
          `(p50 ${(one.p50 / TARGET_P50_MS).toFixed(2)}x of the ${TARGET_P50_MS} ms target)`,
      );
      console.log(
        `  ${"".padEnd(27)} 20 clients: p50 ${ms(many.p50)} p99 ${ms(many.p99)} ` +
          `(${many.perSecond.toFixed(0)} calls/s, p50 ${
            (many.p50 / one.p50).toFixed(1)
          }x the 1-client p50)`,
      );
    }
  } finally {
    for (const c of clients) await c.close();
    if (child) {
      try {
        child.kill("SIGTERM");
      } catch {
        // already gone
      }
      await child.status;
      await drain;
    }
    await Deno.remove(dataDir, { recursive: true });
  }
}

function ms(v: number): string {
  return `${v.toFixed(1)} ms`;
}

if (import.meta.main) await run(Deno.args);
