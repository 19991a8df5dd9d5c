// Every MCP tool during and right after a PostgreSQL outage. The shared server is never
// restarted: the tools reach it through a loopback proxy that the test cuts and restores, and the
// server itself ends the tools' sessions (pg_terminate_backend, SQLSTATE 57P01, what a restart
// sends them).
import { equal, ok } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import { loadServeConfig } from "../lib/config/mod.ts";
import { DB_UNAVAILABLE_TEXT, openDb } from "../lib/db/mod.ts";
import { withTestDb } from "../lib/db/testing.ts";
import { createMcpServer } from "../lib/mcp/server.ts";
import { createResultStore } from "../lib/results/mod.ts";
import { startOutageProxy } from "./fixtures/db_outage_proxy.ts";
import { SEED_END, SEED_START, seedSensors } from "./fixtures/mcp_seed.ts";

const realDb = Deno.env.get("DATABASE_URL") !== undefined;

/** Text a driver or socket produces, which must never reach the assistant. */
const RAW = /CONNECTION_|ECONN|EPIPE|socket|postgres:\/\/|127\.0\.0\.1:\d+|write after end|57P0/i;

const CALLS: { name: string; arguments: Record<string, unknown> }[] = [
  { name: "get_database_schema", arguments: {} },
  { name: "list_sensors", arguments: {} },
  { name: "get_latest_readings", arguments: {} },
  {
    name: "get_sensor_history",
    arguments: { sensor_id: 1, metric: "co2", start: SEED_START, end: SEED_END },
  },
  { name: "get_device_status", arguments: {} },
  { name: "execute_sql_query", arguments: { sql: "select count(*) as n from scd30_measurements" } },
];

interface Answer {
  name: string;
  isError: boolean;
  text: string;
}

async function callAll(client: Client): Promise<Answer[]> {
  return await Promise.all(CALLS.map(async (c) => {
    const r = await client.callTool(c, undefined, { timeout: 20_000 }) as {
      isError?: boolean;
      content: { text?: string }[];
    };
    return {
      name: c.name,
      isError: r.isError === true,
      text: r.content.map((p) => p.text ?? "").join("\n"),
    };
  }));
}

/** Failed answers carry no driver text (successful ones hold links to 127.0.0.1, rightly). */
function assertNoRawText(answers: Answer[]): void {
  for (const a of answers.filter((a) => a.isError)) {
    ok(!RAW.test(a.text), `${a.name} leaked driver text: ${a.text}`);
  }
}

/** Calls every tool until all succeed, for at most `ms`; returns the time it took. */
async function untilAllSucceed(client: Client, ms: number): Promise<number> {
  const start = performance.now();
  let last: Answer[] = [];
  while (performance.now() - start < ms) {
    last = await callAll(client);
    assertNoRawText(last);
    if (last.every((a) => !a.isError)) return performance.now() - start;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(
    `tools still failing ${ms} ms after the database came back: ` +
      JSON.stringify(last.filter((a) => a.isError)),
  );
}

Deno.test({
  name: "tools answer 'database unavailable' during an outage and work again right after it",
  ignore: !realDb,
  async fn() {
    await using db = await withTestDb();
    await seedSensors(db);
    const target = new URL(db.url!);
    await using proxy = await startOutageProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(db.url!);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(proxy.port);
    const appName = `outage-${crypto.randomUUID().slice(0, 8)}`;
    const dataDir = await Deno.makeTempDir({ prefix: "db-outage-test-" });
    const toolDb = await openDb({ databaseUrl: viaProxy.toString(), dataDir, max: 10, appName });
    const config = loadServeConfig({ DATA_DIR: dataDir, SANDBOX_ENGINE: "off" });
    const results = await createResultStore({
      dataDir,
      serverUrl: config.serverUrl,
      ttlH: config.query.cacheTtlH,
      maxBytes: config.query.cacheMaxBytes,
    });
    const server = createMcpServer({ db: toolDb, config, results, sandbox: undefined });
    const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
    await server.connect(serverSide);
    const client = new Client({ name: "db-outage-test", version: "1.0.0" });
    await client.connect(clientSide);
    try {
      // Several rounds at once open several pooled connections, each of which the outage kills.
      for (const answers of await Promise.all([1, 2, 3].map(() => callAll(client)))) {
        for (const a of answers) equal(a.isError, false, `${a.name} before the outage: ${a.text}`);
      }

      // 1. The server ends every session of the tools (as a restart does): the next calls work,
      // each one retried once on a fresh connection if it met a dead one.
      const admin = await openDb({ databaseUrl: db.url!, dataDir, max: 1 });
      try {
        const [{ n }] = await admin.sql<{ n: number }>`
          select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
           where application_name = ${appName}`;
        ok(n >= 1, "no session of the tools to terminate");
      } finally {
        await admin.close();
      }
      await untilAllSucceed(client, 1500);

      // 2. The database becomes unreachable: one clear sentence, no driver text.
      await proxy.down();
      for (let round = 0; round < 3; round++) {
        const answers = await callAll(client);
        assertNoRawText(answers);
        for (const a of answers) {
          equal(a.isError, true, `${a.name} answered during the outage`);
          ok(a.text.includes(DB_UNAVAILABLE_TEXT), `${a.name}: ${a.text}`);
        }
      }

      // 3. It comes back: every tool works again within about a second.
      await proxy.up();
      const tookMs = await untilAllSucceed(client, 1500);
      console.log(`all tools answered ${Math.round(tookMs)} ms after the database came back`);
    } finally {
      await client.close();
      await server.close();
      await toolDb.close();
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
