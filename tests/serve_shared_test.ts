// Two `deno task serve` instances on one PostgreSQL behind a round-robin HTTP proxy: any instance
// answers for any query_id, link or resource. Needs DATABASE_URL (the embedded stack keeps
// results on disk and runs one server per DATA_DIR); the sandbox parts need bubblewrap.
import { equal, match, ok } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { type TestDb, withTestDb } from "../lib/db/testing.ts";
import { startTcpProxy } from "./fixtures/collector_harness.ts";
import type { ServeChild } from "./fixtures/mcp_child.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";
import { seedSensors } from "./fixtures/mcp_seed.ts";
import { type Backend, startRoundRobin } from "./fixtures/round_robin_proxy.ts";
import { connectHttp, startServeInstance } from "./fixtures/serve_instance.ts";

const databaseUrl = Deno.env.get("DATABASE_URL");
const bwrap = databaseUrl ? await sandboxAvailable() : false;
if (!databaseUrl) {
  console.log(
    "  SKIPPED two-server tests: they need PostgreSQL shared by both servers; set DATABASE_URL",
  );
} else if (!bwrap) {
  console.log("  SKIPPING the sandbox calls of the two-server tests: bwrap or pandas missing");
}

/** Rounds per client of the mixed load: a result, one way to read it, and list_sensors. */
const ROUNDS = 6;

type Content = { type: string; text?: string; data?: string; mimeType?: string }[];

/** One `deno task serve`, exactly as a user starts it, with its own DATA_DIR under ./data. */
function serve(env: Record<string, string>): Promise<ServeChild & Backend> {
  return startServeInstance({
    ...env,
    SANDBOX_ENGINE: bwrap ? "bwrap" : "off",
    QUERY_CACHE_MAX_MB: "1",
  }, "test-shared-");
}

const connect = (url: string) => connectHttp(url, "shared-test");

async function call(client: Client, name: string, args: Record<string, unknown>) {
  const r = await client.callTool({ name, arguments: args });
  const content = r.content as Content;
  if (r.isError) throw new Error(`${name} failed: ${content.map((c) => c.text).join(" ")}`);
  return { content, data: r.structuredContent as Record<string, unknown> | undefined };
}

async function storeState(db: TestDb) {
  const [r] = await db.sql<{ bytes: number; files: number; orphans: number; busy: number }>`
    select (select coalesce(sum(bytes), 0)::int8 from result_files where state = 'ready') as bytes,
           (select count(*)::int from result_files where state = 'ready') as files,
           (select count(*)::int from result_chunks c
            where not exists (select 1 from result_files f where f.id = c.result_id)) as orphans,
           (select count(*)::int from result_files where state <> 'ready') as busy`;
  return r;
}

Deno.test({
  name: "two deno task serve instances on one PostgreSQL answer for each other's results",
  ignore: !databaseUrl,
  // The servers' children are stopped by hand; the proxy's fetches end with the test.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async (t) => {
    await using db = await withTestDb();
    await seedSensors(db);
    // Instance B reaches PostgreSQL through a loopback proxy the test can cut.
    const target = new URL(db.url!);
    const pgProxy = await startTcpProxy(target.hostname, Number(target.port || 5432));
    const viaProxy = new URL(db.url!);
    viaProxy.hostname = "127.0.0.1";
    viaProxy.port = String(pgProxy.port);
    await using lb = await startRoundRobin();
    const env = { SERVER_URL: lb.url };
    await using a = await serve({ ...env, DATABASE_URL: db.url! });
    await using b = await serve({ ...env, DATABASE_URL: viaProxy.toString() });
    await Promise.all([a, b].map((s) => s.waitReady(`http://127.0.0.1:${s.port}/healthz`)));
    lb.backends.push(a, b);
    const client = await connect(`${lb.url}/mcp`);
    try {
      await t.step("a query made on A is analysed, plotted, downloaded and read on B", async () => {
        lb.pin = 0;
        const q = await call(client, "execute_sql_query", {
          sql: "select time, sensor_id, co2 from scd30_measurements order by time, sensor_id",
        });
        const queryId = String(q.data!.query_id);
        const csvUrl = String(q.data!.csv_url);
        equal(q.data!.row_count, 150);
        ok(csvUrl.startsWith(`${lb.url}/files/${queryId}.csv?`), csvUrl);

        lb.pin = 1;
        const file = await fetch(csvUrl);
        equal(file.status, 200);
        equal(file.headers.get("content-type"), "text/csv; charset=utf-8");
        const csv = await file.text();
        equal(csv.split("\n")[0], "time,sensor_id,co2");
        equal(csv.trimEnd().split("\n").length, 151);
        equal(Number(file.headers.get("content-length")), new TextEncoder().encode(csv).length);

        const listed = await client.listResources();
        ok(
          listed.resources.some((r: { uri: string }) => r.uri === `query://${queryId}`),
          "B lists A's result",
        );
        const res = await client.readResource({ uri: `query://${queryId}` });
        equal((res.contents[0] as { text: string }).text, csv);

        if (bwrap) {
          const an = await call(client, "analyze_data", {
            query_id: queryId,
            code: "print(len(df), int(df['co2'].max()))",
          });
          match(an.content[0].text!, /^150 849\b/);
          const plot = await call(client, "create_plot", {
            query_id: queryId,
            plot_code: "df.plot(x='time', y='co2')",
          });
          equal(plot.content[0].type, "image");
          const link = /(http\S+\.png\?\S+)/.exec(plot.content[1].text!)![1];
          lb.pin = 0; // the plot made on B is served by A
          const png = await fetch(link);
          equal(png.status, 200);
          const bytes = new Uint8Array(await png.arrayBuffer());
          equal(bytes.length, atob(plot.content[0].data!).length);
          equal(String.fromCharCode(...bytes.subarray(1, 4)), "PNG");
          lb.pin = 1;
        }
        const tampered = await fetch(csvUrl.replace(/sig=./, "sig=A"));
        equal(tampered.status, 403);
        await tampered.body?.cancel();

        const servedBy = (what: string) => lb.served.filter((s) => s.what === what);
        equal(servedBy("tools/call execute_sql_query")[0].backend, 0);
        for (
          const what of [
            `GET /files/${queryId}.csv`,
            "resources/list",
            "resources/read",
            ...(bwrap ? ["tools/call analyze_data", "tools/call create_plot"] : []),
          ]
        ) {
          ok(servedBy(what).length > 0, `${what} went through the proxy`);
          ok(servedBy(what).every((s) => s.backend === 1), `${what} answered by B`);
        }
        if (bwrap) ok(lb.served.some((s) => s.backend === 0 && /\.png$/.test(s.what)));
      });

      await t.step("under a mixed load on both, every call is answered", async () => {
        lb.pin = undefined; // round robin from here on
        const clients: Client[] = await Promise.all([1, 2, 3].map(() => connect(`${lb.url}/mcp`)));
        let calls = 0;
        let saved = 0;
        try {
          await Promise.all(clients.map(async (c: Client, w: number) => {
            for (let i = 0; i < ROUNDS; i++) {
              // ~100 KB each: the 1 MB budget fills and both servers evict while they serve.
              const q = await call(c, "execute_sql_query", {
                sql: `select g, repeat('x', 200) as pad, ${w} as worker
                      from generate_series(1, 500) g`,
              });
              const id = String(q.data!.query_id);
              saved++;
              const kind = (i + w) % 3;
              if (kind === 0) {
                const r = await fetch(String(q.data!.csv_url));
                equal(r.status, 200);
                equal((await r.text()).trimEnd().split("\n").length, 501);
              } else if (kind === 1 || !bwrap) {
                const r = await c.readResource({ uri: `query://${id}` });
                match((r.contents[0] as { text: string }).text, /^g,pad,worker\n1,x{200},\d\n/);
              } else {
                const r = await call(c, "analyze_data", { query_id: id, code: "print(len(df))" });
                match(r.content[0].text!, /^500\b/);
              }
              await call(c, "list_sensors", {});
              calls += 3;
            }
          }));
        } finally {
          for (const c of clients) await c.close();
        }
        equal(calls, clients.length * ROUNDS * 3, "every call answered");
        const backends = new Set(lb.served.slice(-calls).map((s) => s.backend));
        equal(backends.size, 2, "both servers took part");
        const state = await storeState(db);
        ok(state.bytes <= 1024 * 1024, `${state.bytes} bytes kept within QUERY_CACHE_MAX_MB=1`);
        ok(state.files < saved, `eviction ran: ${state.files} of ${saved} results kept`);
        equal(state.orphans, 0, "no chunks without their result");
        equal(state.busy, 0, "no result left half written or half deleted");
        for (const s of [a, b]) ok(!/ERROR|WARN .*result/.test(s.stderr()), s.stderr());
      });

      await t.step(
        "/healthz is 503 while B cannot reach PostgreSQL; /healthz/live stays 200",
        async () => {
          const health = async (s: Backend, path: string) => {
            const r = await fetch(`http://127.0.0.1:${s.port}${path}`);
            return { status: r.status, body: await r.json() };
          };
          const ok200 = await health(b, "/healthz");
          equal(ok200.status, 200);
          equal(ok200.body.results, "database");
          equal(ok200.body.db.reachable, true);
          pgProxy.cut();
          const down = await health(b, "/healthz");
          equal(down.status, 503);
          equal(down.body.ok, false);
          equal(down.body.db.reachable, false);
          equal((await health(b, "/healthz/live")).status, 200);
          equal((await health(a, "/healthz")).status, 200, "A is unaffected");
          pgProxy.restore();
          let back = 0;
          for (let i = 0; i < 50 && back !== 200; i++) {
            back = (await health(b, "/healthz")).status;
            if (back !== 200) await new Promise((r) => setTimeout(r, 200));
          }
          equal(back, 200, "healthy again once PostgreSQL is back");
        },
      );
    } finally {
      await client.close();
      await pgProxy.close();
    }
  },
});
