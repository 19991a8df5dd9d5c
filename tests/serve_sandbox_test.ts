import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { withTestDb } from "../lib/db/testing.ts";
import { childEnv, freePort, spawnServe } from "./fixtures/mcp_child.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// `deno task serve` exactly: the task's permission set (writes only to DATA_DIR), no -A.

const available = await sandboxAvailable();
if (!available) console.warn("SKIPPING serve sandbox test: bwrap or python3 with pandas missing");

function text(r: { content?: unknown }): string {
  return ((r.content ?? []) as { type: string; text?: string }[])
    .map((c) => c.text ?? `[${c.type}]`).join("\n");
}

Deno.test({
  name: "deno task serve runs analyze_data and create_plot under its own permission set",
  ignore: !available,
  async fn() {
    await using db = await withTestDb();
    await Deno.mkdir(`${ROOT}/data`, { recursive: true });
    const dataDir = await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "test-serve-sbx-" });
    try {
      const port = await freePort();
      const env = childEnv({
        DATA_DIR: dataDir,
        PORT: String(port),
        MQTT_LISTEN: `127.0.0.1:${await freePort()}`,
        SANDBOX_ENGINE: "bwrap",
        SANDBOX_TIMEOUT_S: "20",
        ...(db.url ? { DATABASE_URL: db.url } : {}),
      });
      await using child = spawnServe(taskArgs("serve", dataDir), { cwd: ROOT, env });
      await child.waitReady(`http://127.0.0.1:${port}/healthz`);
      const client = new Client({ name: "serve-sandbox-test", version: "1.0.0" });
      await client.connect(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)),
      );
      try {
        const q = await client.callTool({
          name: "execute_sql_query",
          arguments: { sql: "select g as x, g * 2 as y from generate_series(1, 10) g" },
        });
        ok(!q.isError, text(q));
        const queryId = (q.structuredContent as { query_id: string }).query_id;
        const a = await client.callTool({
          name: "analyze_data",
          arguments: { query_id: queryId, code: "print(int(df.y.sum()))" },
        });
        ok(!a.isError, text(a));
        match(text(a), /^110\b/);
        const p = await client.callTool({
          name: "create_plot",
          arguments: { query_id: queryId, plot_code: "df.plot(x='x', y='y')" },
        });
        ok(!p.isError, text(p));
        const image = (p.content as { type: string; data?: string }[]).find((c) =>
          c.type === "image"
        );
        ok(image?.data, "the plot comes back as an image");
        equal(atob(image.data!).slice(1, 4), "PNG");
      } finally {
        await client.close();
      }
      child.process.kill("SIGTERM");
      equal((await child.process.status).code, 0);
      const leftovers = [];
      for await (const e of Deno.readDir(`${dataDir}/sandbox`)) leftovers.push(e.name);
      equal(leftovers.length, 0, "job folders are removed after each job");
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
