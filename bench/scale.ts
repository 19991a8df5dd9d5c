/**
 * Scale-out benchmark (needs DATABASE_URL): throughput of `execute_sql_query` followed by
 * `analyze_data` on its result, against one `deno task serve` and against two behind a
 * round-robin HTTP proxy on the same PostgreSQL, in one run (the ratio is printed); then the
 * latency of the shared result store (PostgreSQL chunks) against the disk one at p50/p99, for a
 * save and a full read of a 1,000-row and a 20,000-row result. Flags: `--scale-clients=N`
 * (default 4), `--scale-pairs=N` per client (default 6), `--scale-runs=N` store runs (200).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { openDb } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import type { ResultStore } from "../lib/mcp/mod.ts";
import { createResultStore, createSharedResultStore } from "../lib/results/mod.ts";
import { sandboxAvailable } from "../tests/fixtures/mcp_sandbox_available.ts";
import { childEnv, freePort, spawnServe } from "../tests/fixtures/mcp_child.ts";
import { startRoundRobin } from "../tests/fixtures/round_robin_proxy.ts";
import { seed, SENSORS } from "./mcp.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

type CallResult = { isError?: boolean; content?: unknown; structuredContent?: unknown };

function percentiles(times: number[]): { p50: number; p99: number } {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))];
  return { p50: at(0.5), p99: at(0.99) };
}

const ms = (n: number) => `${n.toFixed(1)} ms`;

/** Pairs of calls per second with `clients` concurrent clients on `url`. */
async function throughput(
  url: string,
  opts: { clients: number; pairs: number; sandbox: boolean },
): Promise<{ perSecond: number; p50: number; p99: number }> {
  const clients: Client[] = [];
  try {
    for (let i = 0; i < opts.clients; i++) {
      const c = new Client({ name: `bench-scale-${i}`, version: "1.0.0" });
      await c.connect(new StreamableHTTPClientTransport(new URL(url)));
      clients.push(c);
    }
    const times: number[] = [];
    const start = performance.now();
    await Promise.all(clients.map(async (c, ci) => {
      for (let i = 0; i < opts.pairs; i++) {
        const t = performance.now();
        const n = ci * opts.pairs + i;
        const q = await c.callTool({
          name: "execute_sql_query",
          arguments: {
            sql: `select time, co2, temperature from scd30_measurements
                  where sensor_id = ${(n % SENSORS) + 1}
                    and time >= timestamptz '2024-01-01' + interval '${(n * 37) % 5000} minutes'
                  order by time limit 1000`,
          },
        }) as CallResult;
        if (q.isError) throw new Error(`execute_sql_query failed: ${JSON.stringify(q.content)}`);
        const id = (q.structuredContent as { query_id: string }).query_id;
        if (opts.sandbox) {
          const a = await c.callTool({
            name: "analyze_data",
            arguments: { query_id: id, code: "print(len(df), round(df['co2'].mean(), 1))" },
          }) as CallResult;
          if (a.isError) throw new Error(`analyze_data failed: ${JSON.stringify(a.content)}`);
        }
        times.push(performance.now() - t);
      }
    }));
    const wall = (performance.now() - start) / 1000;
    return { perSecond: times.length / wall, ...percentiles(times) };
  } finally {
    for (const c of clients) await c.close();
  }
}

/** p50/p99 of saving a result and of reading it back whole, on one store. */
async function storeLatency(
  store: ResultStore,
  rows: unknown[][],
  runs: number,
): Promise<{ save: { p50: number; p99: number }; read: { p50: number; p99: number } }> {
  const save: number[] = [];
  const read: number[] = [];
  for (let i = 0; i < runs + 5; i++) {
    let t = performance.now();
    const { queryId } = await store.saveCsv(["i", "time", "co2", "note"], rows);
    const s = performance.now() - t;
    t = performance.now();
    const file = await store.openFile(queryId, "csv");
    const bytes = (await new Response(file!.body).arrayBuffer()).byteLength;
    if (bytes !== file!.size) throw new Error("short read");
    const r = performance.now() - t;
    if (i >= 5) { // warm-up first
      save.push(s);
      read.push(r);
    }
    await store.remove(queryId);
  }
  return { save: percentiles(save), read: percentiles(read) };
}

/** Runs the scale-out benchmark. */
export async function run(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      "scale-clients": { type: "string", default: "4" },
      "scale-pairs": { type: "string", default: "6" },
      "scale-runs": { type: "string", default: "200" },
    },
    strict: false,
  });
  const clients = Number(values["scale-clients"]);
  const pairs = Number(values["scale-pairs"]);
  const runs = Number(values["scale-runs"]);
  if (!Deno.env.get("DATABASE_URL")) {
    console.log("scale: skipped — several servers share PostgreSQL only; set DATABASE_URL");
    return;
  }
  const sandbox = await sandboxAvailable();
  await using db = await withTestDb();
  const seedS = await seed(db);
  await Deno.mkdir(`${ROOT}/data`, { recursive: true });
  const dirs: string[] = [];
  await using lb = await startRoundRobin();
  const servers = [];
  try {
    for (let i = 0; i < 2; i++) {
      const dataDir = await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "bench-scale-" });
      dirs.push(dataDir);
      const port = await freePort();
      const child = spawnServe(["task", "serve"], {
        cwd: ROOT,
        env: childEnv({
          DATABASE_URL: db.url!,
          DATA_DIR: dataDir,
          PORT: String(port),
          SERVER_URL: lb.url,
          SANDBOX_ENGINE: sandbox ? "bwrap" : "off",
        }),
      });
      servers.push(Object.assign(child, { port }));
    }
    for (const s of servers) await s.waitReady(`http://127.0.0.1:${s.port}/healthz`);
    lb.backends.push(...servers);

    const what = sandbox ? "execute_sql_query (1,000 rows) + analyze_data" : "execute_sql_query";
    console.log(
      `scale: ${what}, ${clients} clients × ${pairs}, postgres, ` +
        `scd30_measurements 1,000,000 rows (seeded in ${seedS.toFixed(1)} s), ` +
        `${navigator.hardwareConcurrency} cores shared by everything` +
        (sandbox ? "" : " (no bwrap: sandbox calls left out)"),
    );
    // Warm-up of both servers (JIT, pools, Python's page cache).
    await throughput(`${lb.url}/mcp`, { clients: 2, pairs: 2, sandbox });
    lb.pin = 0;
    const one = await throughput(`${lb.url}/mcp`, { clients, pairs, sandbox });
    lb.pin = undefined;
    const two = await throughput(`${lb.url}/mcp`, { clients, pairs, sandbox });
    const line = (name: string, r: typeof one) =>
      console.log(
        `  ${name.padEnd(28)} ${r.perSecond.toFixed(2)} pairs/s  p50 ${ms(r.p50)}  p99 ${
          ms(r.p99)
        }`,
      );
    line("1 server (via the proxy)", one);
    line("2 servers, round robin", two);
    console.log(`  2 servers ÷ 1 server         ${(two.perSecond / one.perSecond).toFixed(2)}×`);
  } finally {
    for (const s of servers) {
      s.process.kill("SIGTERM");
      await s.process.status;
      await s[Symbol.asyncDispose]();
    }
    for (const d of dirs) await Deno.remove(d, { recursive: true });
  }

  // The stores themselves, in this process: disk under a temp DATA_DIR vs PostgreSQL chunks.
  const dir = await Deno.makeTempDir({ prefix: "bench-scale-store-" });
  const pool = await openDb({ databaseUrl: db.url, dataDir: dir, max: 4 });
  try {
    const opts = { dataDir: dir, serverUrl: "http://127.0.0.1", ttlH: 1, maxBytes: 1024 ** 3 };
    const disk = await createResultStore(opts);
    const shared = await createSharedResultStore({ ...opts, db: pool });
    console.log(`  result store, ${runs} saves + full reads each:`);
    for (const n of [1_000, 20_000]) {
      const rows = Array.from(
        { length: n },
        (_, i) => [i, new Date(Date.UTC(2024, 0, 1, 0, 0, i)), 400 + (i % 997), `room ${i % 7}`],
      );
      const r = Math.max(10, Math.round(runs * 1000 / n));
      const d = await storeLatency(disk, rows, r);
      const s = await storeLatency(shared, rows, r);
      const kb = Math.round(
        (await disk.saveCsv(["i", "time", "co2", "note"], rows)).bytes / 1024,
      );
      console.log(
        `    ${n.toLocaleString("en-US")} rows (${kb} KB, ${r} runs): ` +
          `save disk p50 ${ms(d.save.p50)} p99 ${ms(d.save.p99)} | shared p50 ${
            ms(s.save.p50)
          } p99 ${ms(s.save.p99)} (${(s.save.p50 / d.save.p50).toFixed(2)}× at p50)`,
      );
      console.log(
        `    ${"".padEnd(n.toLocaleString("en-US").length + kb.toString().length + 20)}` +
          `read disk p50 ${ms(d.read.p50)} p99 ${ms(d.read.p99)} | shared p50 ${
            ms(s.read.p50)
          } p99 ${ms(s.read.p99)} (${(s.read.p50 / d.read.p50).toFixed(2)}× at p50)`,
      );
    }
  } finally {
    await pool.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await run(Deno.args);
