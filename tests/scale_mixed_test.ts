// Two collectors in one MQTT_SHARED_GROUP and two `deno task serve` instances behind a round-robin
// proxy, all on one PostgreSQL, for one bounded run: the collectors store a paced stream of
// readings while MCP clients call the servers. Every reading is stored once, every call answered.
// Needs DATABASE_URL (shared by all four processes) and MQTT_URL (a broker with shared
// subscriptions, Mosquitto ≥ 1.6; the embedded aedes has none).
import { equal, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { withTestDb } from "../lib/db/testing.ts";
import {
  clearSession,
  connectClient,
  countReadings,
  publishReadings,
  suffix,
  sumTo,
  waitFor,
} from "./fixtures/collector_harness.ts";
import { childEnv, type ServeChild } from "./fixtures/mcp_child.ts";
import { type Backend, startRoundRobin } from "./fixtures/round_robin_proxy.ts";
import { connectHttp, startServeInstance } from "./fixtures/serve_instance.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const databaseUrl = Deno.env.get("DATABASE_URL");
const mqttUrl = Deno.env.get("MQTT_URL");
if (!databaseUrl || !mqttUrl) {
  console.log(
    "  SKIPPED the two-collector, two-server test: it needs PostgreSQL shared by every process " +
      "(set DATABASE_URL) and a broker with shared subscriptions (set MQTT_URL to Mosquitto ≥ 1.6; " +
      "the embedded aedes has none)",
  );
}

/** Readings published during the run: QoS 1, `CHUNK` at a time every `PAUSE_MS` (about 20 s). */
const TOTAL = 3000;
const CHUNK = 50;
const PAUSE_MS = 300;
/** MCP clients calling the servers in a loop while the readings flow in. */
const CLIENTS = 3;
/** The whole run is bounded: ingest and load stop here at the latest. */
const RUN_LIMIT_MS = 90_000;

type Content = { type: string; text?: string }[];

/** A `collector.ts` child under the `collect` task's real permission flags. */
interface Collector {
  process: Deno.ChildProcess;
  dataDir: string;
  clientId: string;
  stderr(): string;
  status: Promise<Deno.CommandStatus>;
}

function spawnCollector(
  opts: { dbUrl: string; dataDir: string; clientId: string; group: string },
): Collector {
  const process = new Deno.Command(Deno.execPath(), {
    args: taskArgs("collect", opts.dataDir),
    cwd: ROOT,
    env: childEnv({
      DATABASE_URL: opts.dbUrl,
      MQTT_URL: mqttUrl!,
      MQTT_CLIENT_ID: opts.clientId,
      MQTT_SHARED_GROUP: opts.group,
      DATA_DIR: opts.dataDir,
    }),
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  const drain = (async () => {
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) text += chunk;
  })();
  const status = process.status.then(async (s) => {
    await drain;
    return s;
  });
  return { process, dataDir: opts.dataDir, clientId: opts.clientId, stderr: () => text, status };
}

/** The `stored` count of the collector's last log line "Collector stopped …". */
function storedAtStop(c: Collector): number {
  const m = /Collector stopped.*\bstored=(\d+)/.exec(c.stderr());
  if (!m) throw new Error(`no "Collector stopped" line in the collector's log:\n${c.stderr()}`);
  return Number(m[1]);
}

/** One `deno task serve`, as a user starts it, with its own DATA_DIR under ./data. */
function serve(env: Record<string, string>): Promise<ServeChild & Backend> {
  return startServeInstance({ ...env, SANDBOX_ENGINE: "off" }, "test-scale-");
}

const connect = (url: string) => connectHttp(url, "scale-test");

async function call(client: Client, name: string, args: Record<string, unknown>) {
  const r = await client.callTool({ name, arguments: args });
  const content = r.content as Content;
  if (r.isError) throw new Error(`${name} failed: ${content.map((c) => c.text).join(" ")}`);
  return r.structuredContent as Record<string, unknown> | undefined;
}

Deno.test({
  name: "two collectors with a shared subscription and two servers under a mixed load: " +
    "every reading stored once, every call answered",
  ignore: !databaseUrl || !mqttUrl,
  // The children are stopped by hand; the proxy's fetches end with the test.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using db = await withTestDb();
    const id = suffix();
    const device = `scale_${id}`;
    const group = `g${id}`;
    await Deno.mkdir(`${ROOT}/data`, { recursive: true });
    const dirs = [
      await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "test-scale-collector-" }),
      await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "test-scale-collector-" }),
    ];
    const collectors = dirs.map((dataDir, i) =>
      spawnCollector({ dbUrl: db.url!, dataDir, clientId: `collector-${"ab"[i]}-${id}`, group })
    );
    const pub = await connectClient(mqttUrl!, `pub-scale-${id}`);
    await using lb = await startRoundRobin();
    await using a = await serve({ SERVER_URL: lb.url, DATABASE_URL: db.url! });
    await using b = await serve({ SERVER_URL: lb.url, DATABASE_URL: db.url! });
    const clients: Client[] = [];
    const started = Date.now();
    try {
      await Promise.all([
        ...[a, b].map((s) => s.waitReady(`http://127.0.0.1:${s.port}/healthz`)),
        ...collectors.map((c) =>
          waitFor("the collector's subscription", () => /Subscribed/.test(c.stderr()), {
            detail: () => c.stderr(),
          })
        ),
      ]);
      lb.backends.push(a, b);
      for (let i = 0; i < CLIENTS; i++) clients.push(await connect(`${lb.url}/mcp`));

      let ingestDone = false;
      let calls = 0;
      let answered = 0;
      const firstCall = lb.served.length;
      const deadline = started + RUN_LIMIT_MS;
      // Each client keeps calling until every reading is stored (or the run limit is reached).
      const load = Promise.all(clients.map(async (c, w) => {
        for (let i = 0; !ingestDone && Date.now() < deadline; i++) {
          calls++;
          const kind = (i + w) % 3;
          if (kind === 0) {
            const q = await call(c, "execute_sql_query", {
              sql: `select count(*)::int as n, coalesce(sum(m.co2), 0)::float8 as s
                    from scd30_measurements m join sensors s using (sensor_id)
                    where s.device_id = '${device}'`,
            });
            equal(q!.row_count, 1);
          } else if (kind === 1) {
            const r = await call(c, "list_sensors", {});
            ok(r !== undefined, "list_sensors has structured content");
          } else {
            const r = await call(c, "get_latest_readings", {});
            ok(Array.isArray(r!.readings), "get_latest_readings lists readings");
          }
          answered++;
        }
      }));
      const ingest = (async () => {
        try {
          await publishReadings(pub, {
            device,
            from: 0,
            to: TOTAL,
            chunk: CHUNK,
            pauseMs: PAUSE_MS,
          });
          await waitFor(
            "every reading",
            async () => (await countReadings(db, device)).columnar >= TOTAL,
            {
              timeoutMs: Math.max(1000, deadline - Date.now()),
              detail: async () => JSON.stringify(await countReadings(db, device)),
            },
          );
          // Give a duplicate delivery, were there one, the time to arrive.
          await new Promise((r) => setTimeout(r, 300));
        } finally {
          ingestDone = true;
        }
      })();
      await Promise.all([ingest, load]);
      const runMs = Date.now() - started;
      console.log(
        `  ${TOTAL} readings and ${answered} MCP calls in ${(runMs / 1000).toFixed(1)} s`,
      );

      const counts = await countReadings(db, device);
      equal(counts.columnar, TOTAL, "each reading stored once");
      equal(counts.flexible, 3 * TOTAL);
      equal(counts.co2Sum, sumTo(TOTAL));

      equal(answered, calls, "every call answered");
      ok(answered >= 3 * CLIENTS, `only ${answered} calls during the ingest`);
      const toolCalls = lb.served.slice(firstCall).filter((s) => s.what.startsWith("tools/call "));
      equal(toolCalls.length, calls, "every call went through the proxy");
      for (const backend of [0, 1]) {
        for (const tool of ["execute_sql_query", "list_sensors", "get_latest_readings"]) {
          ok(
            toolCalls.some((s) => s.backend === backend && s.what === `tools/call ${tool}`),
            `server ${"AB"[backend]} answered ${tool}`,
          );
        }
      }
      for (const s of [a, b]) ok(!/\bERROR\b/.test(s.stderr()), s.stderr());
    } finally {
      for (const c of clients) await c.close().catch(() => {});
      await pub.endAsync();
      for (const c of collectors) {
        try {
          c.process.kill("SIGTERM");
        } catch {
          // already gone
        }
      }
      const statuses = await Promise.all(collectors.map((c) => c.status));
      await Promise.all(collectors.map((c) => clearSession(mqttUrl!, c.clientId)));
      await Promise.all(dirs.map((d) => Deno.remove(d, { recursive: true })));
      statuses.forEach((s, i) => equal(s.code, 0, collectors[i].stderr()));
    }
    // Each collector stored part of the stream, none all of it (other traffic on a shared broker may
    // add to both counts).
    const [sa, sb] = collectors.map(storedAtStop);
    console.log(`  collector A stored ${sa}, collector B ${sb}`);
    ok(sa > 0 && sb > 0, `the stream was not split: ${sa} and ${sb}`);
    ok(sa + sb >= TOTAL && sa + sb < TOTAL * 1.5, `stored ${sa} + ${sb} for ${TOTAL} readings`);
  },
});
