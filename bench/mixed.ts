/**
 * Mixed benchmark: N MCP clients calling `execute_sql_query` while the collector ingests a steady
 * offered load, against each alone, in one run — the cost of sharing the machine's cores. The
 * real server (`main.ts`) and the real collector (`collector.ts`), each with the permission flags and
 * V8 flags of its `deno task`, run in their own processes on a fresh PostgreSQL database
 * (DATABASE_URL; the embedded database runs the collector inside the server, see the mcp part), a
 * paced publisher in a worker. Besides latencies and rates it prints where the CPU time went:
 * the server, the collector, their PostgreSQL backends, and this process (clients, publisher).
 *
 * Flags: `--mixed-clients=20`, `--mixed-rate=5000` (msg/s offered), `--mixed-seconds=10`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import type { Queryable } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { startEmbeddedBroker } from "../lib/mqtt/mod.ts";
import { forgetSession } from "./_ingest_collector.ts";
import { freePort } from "./mcp.ts";
import type { PacedJob } from "./_mixed_publisher.ts";
import { taskArgs } from "../tests/fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ROWS = 200_000;
const SENSORS = 5;
const DEVICES = 500;

interface Options {
  clients: number;
  rate: number;
  seconds: number;
}

function options(args: string[]): Options {
  const num = (name: string, dflt: number) => {
    const a = args.find((x) => x.startsWith(`--mixed-${name}=`));
    const v = a ? Number(a.split("=")[1]) : dflt;
    if (!Number.isFinite(v) || v <= 0) throw new Error(`--mixed-${name} must be a positive number`);
    return v;
  };
  return { clients: num("clients", 20), rate: num("rate", 5000), seconds: num("seconds", 10) };
}

/** Runs the mixed benchmark and prints tools and ingest alone and together. */
export async function run(args: string[]): Promise<void> {
  if (!Deno.env.get("DATABASE_URL")) {
    console.log(
      "mixed: skipped (needs DATABASE_URL: the collector and the server share PostgreSQL)",
    );
    return;
  }
  const o = options(args);
  await using db = await withTestDb();
  await seed(db);
  const broker = Deno.env.get("MQTT_URL")
    ? { url: Deno.env.get("MQTT_URL")!, close: async () => {} }
    : await startEmbeddedBroker({ host: "127.0.0.1", port: 0 });
  const dataDir = await Deno.makeTempDir({ prefix: "bench-mixed-" });
  const procs: Proc[] = [];
  const clients: Client[] = [];
  const clientId = `ambient-bench-mixed-collector-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const port = freePort();
    const common = {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/tmp",
      ...(Deno.env.get("DENO_DIR") ? { DENO_DIR: Deno.env.get("DENO_DIR")! } : {}),
      DATABASE_URL: db.url!,
      NO_COLOR: "1",
    };
    const serve = spawn("serve", taskArgs("serve", dataDir).slice(1), {
      ...common,
      DATA_DIR: dataDir,
      PORT: String(port),
      SANDBOX_ENGINE: "off",
    });
    procs.push(serve);
    await Deno.mkdir(`${dataDir}/collector`, { recursive: true });
    const collect = spawn("collect", taskArgs("collect", `${dataDir}/collector`).slice(1), {
      ...common,
      DATA_DIR: `${dataDir}/collector`,
      MQTT_URL: broker.url,
      MQTT_CLIENT_ID: clientId,
    });
    procs.push(collect);
    await serve.waitFor(/MCP server ready/, 60_000);
    await collect.waitFor(/Subscribed/, 60_000);

    for (let i = 0; i < o.clients; i++) {
      const c = new Client({ name: `bench-mixed-${i}`, version: "1.0.0" });
      await c.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
      clients.push(c);
    }
    let n = 0;
    const sql = async (c: Client) => {
      const i = n++;
      const r = await c.callTool({
        name: "execute_sql_query",
        arguments: {
          sql: `select time, co2, temperature, humidity from scd30_measurements
                where sensor_id = ${(i % SENSORS) + 1}
                  and time >= timestamptz '2024-01-01' + interval '${(i * 37) % 5000} minutes'
                order by time limit 100`,
        },
      }) as { isError?: boolean; content?: unknown };
      if (r.isError) throw new Error(`execute_sql_query failed: ${JSON.stringify(r.content)}`);
    };
    // Warm-up: JIT, pools, the collector's sensor cache.
    await callFor(clients, 2, sql);
    await ingest(db, broker.url, { ...o, seconds: 2 }, 3);

    const backends = async () => await backendPids(db);
    const cpu = async () => await cpuOf(procs, await backends());
    console.log(
      `mixed: ${o.clients} MCP clients (execute_sql_query, 100 rows) and the collector ` +
        `offered ${o.rate.toLocaleString("en-US")} msg/s (${DEVICES} devices, QoS 1); ` +
        `${o.seconds} s each; ${navigator.hardwareConcurrency} cores shared`,
    );
    let before = await cpu();
    const tools = await callFor(clients, o.seconds, sql);
    const toolsCpu = diff(await cpu(), before);
    before = await cpu();
    const alone = await ingest(db, broker.url, o, 4);
    const ingestCpu = diff(await cpu(), before);
    before = await cpu();
    // The tools keep calling until the collector has stored the whole offer.
    const bothIngesting = ingest(db, broker.url, o, 5);
    const both = await callFor(clients, o.seconds, sql, bothIngesting);
    const bothIngest = await bothIngesting;
    const bothCpu = diff(await cpu(), before);

    const row = (name: string, t: Latency | undefined, i: Ingest | undefined) =>
      console.log(
        `  ${name.padEnd(14)} ${(t ? `${ms(t.p50)} / ${ms(t.p99)}` : "—").padEnd(22)} ` +
          `${(t ? `${t.perSecond.toFixed(0)}` : "—").padStart(8)} ` +
          `${(i ? Math.round(i.rate).toLocaleString("en-US") : "—").padStart(10)}` +
          (i && i.stored < i.published ? ` (${i.published - i.stored} not stored)` : ""),
      );
    console.log(
      `  ${"".padEnd(14)} ${"tool p50 / p99".padEnd(22)} ${"calls/s".padStart(8)} ` +
        `${"ingest/s".padStart(10)}`,
    );
    row("tools alone", tools, undefined);
    row("ingest alone", undefined, alone);
    row("both", both, bothIngest);
    console.log(
      `  sharing costs: tool p50 ×${(both.p50 / tools.p50).toFixed(2)}, p99 ×${
        (both.p99 / tools.p99).toFixed(2)
      }, ingest ×${(bothIngest.rate / alone.rate).toFixed(2)} (of ` +
        `${o.rate.toLocaleString("en-US")} msg/s offered: alone ${pct(alone.rate / o.rate)}, ` +
        `both ${pct(bothIngest.rate / o.rate)})`,
    );
    const load = await Deno.readTextFile("/proc/loadavg").catch(() => "");
    if (load) console.log(`  machine load average (1 min) at the end: ${load.split(" ")[0]}`);
    console.log("  CPU seconds per phase (where the time goes):");
    for (const [name, c] of [["tools", toolsCpu], ["ingest", ingestCpu], ["both", bothCpu]]) {
      console.log(`    ${String(name).padEnd(7)} ${formatCpu(c as Cpu)}`);
    }
  } finally {
    for (const c of clients) await c.close().catch(() => {});
    for (const p of procs) await p.stop();
    await forgetSession({ url: broker.url, clientId } as Parameters<typeof forgetSession>[0]);
    await broker.close();
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
}

async function seed(db: Queryable): Promise<void> {
  await db.exec(`
    insert into devices (device_id, device_name, location, status)
      select 'seed-' || g, 'Seed board ' || g, 'room ' || g, 'online'
      from generate_series(1, ${SENSORS}) g;
    insert into sensors (sensor_id, device_id, sensor_type, last_seen)
      select g, 'seed-' || g, 'scd30', now() from generate_series(1, ${SENSORS}) g;
    select setval(pg_get_serial_sequence('sensors', 'sensor_id'), ${SENSORS});
    insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
      select timestamptz '2024-01-01' + (g / ${SENSORS}) * interval '10 seconds',
             g % ${SENSORS} + 1, 400 + (g % 997), 20 + (g % 50) / 10.0, 40 + (g % 30)
      from generate_series(0, ${ROWS - 1}) g;
    analyze scd30_measurements;`);
}

interface Latency {
  p50: number;
  p99: number;
  perSecond: number;
}

/** Every client calls `call` back to back for `seconds`, or until `until` settles. */
async function callFor(
  clients: Client[],
  seconds: number,
  call: (c: Client) => Promise<void>,
  until?: Promise<unknown>,
): Promise<Latency> {
  const times: number[] = [];
  const start = performance.now();
  const end = start + seconds * 1000;
  let more = true;
  until?.finally(() => more = false);
  await Promise.all(clients.map(async (c) => {
    while (until ? more : performance.now() < end) {
      const t = performance.now();
      await call(c);
      times.push(performance.now() - t);
    }
  }));
  const wall = performance.now() - start;
  times.sort((a, b) => a - b);
  const at = (q: number) => times[Math.min(times.length - 1, Math.floor(times.length * q))];
  return { p50: at(0.5), p99: at(0.99), perSecond: times.length / (wall / 1000) };
}

/** What an ingest phase achieved. */
interface Ingest {
  /** Readings stored per second, first publish to last commit. */
  rate: number;
  /** Readings published and stored. */
  published: number;
  stored: number;
}

/**
 * Offers `o.rate` msg/s for `o.seconds`, waits until the collector has stored them (or made no
 * progress for 5 s), and returns the rate from the first publish to the last commit. `slot`
 * keeps each phase's readings apart in time.
 */
async function ingest(db: Queryable, url: string, o: Options, slot: number): Promise<Ingest> {
  const baseSec = Math.floor(Date.now() / 1000) - slot * 86400;
  const span = Math.ceil((o.rate * o.seconds) / DEVICES) + 10;
  const count = async () =>
    (await db.sql<{ n: number }>`
      select count(*)::int as n from scd30_measurements
       where time >= to_timestamp(${baseSec}) and time < to_timestamp(${baseSec + span})`)[0].n;
  const worker = new Worker(new URL("./_mixed_publisher.ts", import.meta.url), { type: "module" });
  try {
    const job: PacedJob = {
      url,
      rate: o.rate,
      seconds: o.seconds,
      devices: DEVICES,
      prefix: "mixed",
      baseSec,
      window: 2000,
    };
    const start = performance.now();
    const done = new Promise<{ ok: boolean; error?: string; published: number }>((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
    });
    worker.postMessage(job);
    const r = await done;
    if (!r.ok) throw new Error(`publisher: ${r.error}`);
    let stored = 0;
    let lastAt = performance.now();
    while (stored < r.published && performance.now() - lastAt < 5000) {
      const n = await count();
      if (n > stored) [stored, lastAt] = [n, performance.now()];
      await new Promise((r) => setTimeout(r, 100));
    }
    return { rate: stored / ((lastAt - start) / 1000), published: r.published, stored };
  } finally {
    worker.terminate();
  }
}

/** A product process, with its log lines (stderr) kept for waiting and for errors. */
interface Proc {
  name: string;
  child: Deno.ChildProcess;
  waitFor(re: RegExp, ms: number): Promise<void>;
  stop(): Promise<void>;
}

function spawn(name: string, args: string[], env: Record<string, string>): Proc {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...args],
    cwd: ROOT,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let log = "";
  let exited = false;
  child.status.then(() => exited = true);
  const drained = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      log = (log + chunk).slice(-20_000);
    }
  })();
  return {
    name,
    child,
    async waitFor(re, ms) {
      const until = performance.now() + ms;
      while (!re.test(log)) {
        if (exited || performance.now() > until) {
          throw new Error(`${name} did not log ${re} (exited: ${exited}):\n${log.slice(-4000)}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const timer = setTimeout(() => !exited && child.kill("SIGKILL"), 20_000);
      await child.status;
      clearTimeout(timer);
      await drained;
    },
  };
}

/** PostgreSQL backends of the server and of the collector, by application_name. */
async function backendPids(db: Queryable): Promise<{ serve: number[]; collect: number[] }> {
  const rows = await db.sql<{ pid: number; app: string }>`
    select pid, application_name as app from pg_stat_activity
     where application_name in ('ambient-serve', 'ambient-collector')`;
  return {
    serve: rows.filter((r) => r.app === "ambient-serve").map((r) => r.pid),
    collect: rows.filter((r) => r.app === "ambient-collector").map((r) => r.pid),
  };
}

type Cpu = Record<string, number>;

/** CPU seconds (user + system) so far of the processes, their backends and this process. */
async function cpuOf(procs: Proc[], pids: { serve: number[]; collect: number[] }): Promise<Cpu> {
  const ticks = async (pid: number) => {
    try {
      const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      return (Number(f[11]) + Number(f[12])) / 100; // utime, stime at 100 Hz
    } catch {
      return 0;
    }
  };
  const sum = async (list: number[]) =>
    (await Promise.all(list.map(ticks))).reduce((a, b) => a + b, 0);
  const out: Cpu = {};
  for (const p of procs) out[p.name] = await ticks(p.child.pid);
  out["pg (serve)"] = await sum(pids.serve);
  out["pg (collect)"] = await sum(pids.collect);
  out["bench (clients, publisher)"] = await ticks(Deno.pid);
  return out;
}

function diff(after: Cpu, before: Cpu): Cpu {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]));
}

function formatCpu(c: Cpu): string {
  return Object.entries(c).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(", ");
}

const ms = (v: number) => `${v.toFixed(1)} ms`;
const pct = (v: number) => `${Math.round(v * 100)}%`;
