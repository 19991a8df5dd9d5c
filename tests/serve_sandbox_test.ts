import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { withTestDb } from "../lib/db/testing.ts";
import { detectCgroups } from "../lib/sandbox/_cgroup.ts";
import { childEnv, freePort, spawnServe } from "./fixtures/mcp_child.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** A recursive CTE doubling a jsonb value each step (the backend's memory grows without bound). */
const DOUBLING = "with recursive t(n, j) as (select 1, '[1,2,3,4,5,6,7,8]'::jsonb " +
  "union all select n + 1, j || j from t where n < 40) select n, length(j::text) from t " +
  "order by n desc limit 1";
// `deno task serve` exactly: the task's permission set (writes only to DATA_DIR), no -A.

const available = await sandboxAvailable();
if (!available) console.warn("SKIPPING serve sandbox test: bwrap or python3 with pandas missing");

function text(r: { content?: unknown }): string {
  return ((r.content ?? []) as { type: string; text?: string }[])
    .map((c) => c.text ?? `[${c.type}]`).join("\n");
}

/**
 * Starts `deno task serve` on `dataDir` with the bwrap sandbox, connects an MCP client and runs a
 * ten-row query whose id the sandbox tools use.
 */
async function startServe(
  dataDir: string,
  dbUrl: string | undefined,
  timeoutS: number,
  extra: Record<string, string> = {},
) {
  const port = await freePort();
  const env = childEnv({
    ...extra,
    DATA_DIR: dataDir,
    PORT: String(port),
    MQTT_LISTEN: `127.0.0.1:${await freePort()}`,
    SANDBOX_ENGINE: "bwrap",
    SANDBOX_TIMEOUT_S: String(timeoutS),
    ...(dbUrl ? { DATABASE_URL: dbUrl } : {}),
  });
  const child = spawnServe(taskArgs("serve", dataDir), { cwd: ROOT, env });
  try {
    // A loaded machine may need long for the embedded database's first start.
    await child.waitReady(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 180_000 });
    const client = new Client({ name: "serve-sandbox-test", version: "1.0.0" });
    await client.connect(
      new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)),
    );
    const q = await client.callTool({
      name: "execute_sql_query",
      arguments: { sql: "select g as x, g * 2 as y from generate_series(1, 10) g" },
    });
    ok(!q.isError, text(q));
    return { child, client, port, queryId: (q.structuredContent as { query_id: string }).query_id };
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
}

Deno.test({
  name: "deno task serve runs analyze_data and create_plot under its own permission set",
  ignore: !available,
  async fn() {
    await using db = await withTestDb();
    await Deno.mkdir(`${ROOT}/data`, { recursive: true });
    const dataDir = await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "test-serve-sbx-" });
    try {
      // The memory watch is what stops this query: the temp-file limit is lifted.
      const started = await startServe(dataDir, db.url, 20, {
        QUERY_MAX_MEMORY_MB: "200",
        QUERY_TEMP_FILE_MB: "100000",
      });
      await using child = started.child;
      const { client, queryId } = started;
      try {
        // The task's permission set cannot touch /proc or /sys itself: the job limits are those
        // this host offers all the same.
        const expected = (await detectCgroups())?.mode ?? "supervisor";
        match(child.stderr(), new RegExp(`sandbox engine.*limits=${expected}\\b`));
        if (db.url) {
          // A local PostgreSQL backend is watched through the same permission set.
          const q = await client.callTool({
            name: "execute_sql_query",
            arguments: { sql: DOUBLING },
          });
          equal(q.isError, true, text(q));
          match(text(q), /more than 200 MB of memory on the database server/);
        }
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

/** Resident memory of a process, from /proc (bytes). */
async function rss(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

Deno.test({
  name:
    "deno task serve keeps host files out of plots, answers and stops on SIGTERM while hostile jobs run",
  ignore: !available,
  async fn() {
    await using db = await withTestDb();
    await Deno.mkdir(`${ROOT}/data`, { recursive: true });
    const dataDir = await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "test-serve-sbx-" });
    try {
      const secret = `secret-${crypto.randomUUID()}`;
      await Deno.writeTextFile(`${dataDir}/link_secret`, secret);
      const started = await startServe(dataDir, db.url, 120);
      await using child = started.child;
      const { client, port, queryId } = started;
      match(child.stderr(), /sandbox engine.*limits=(cgroup-v2|cgroup-v1|supervisor)/);
      const hanging: Promise<unknown>[] = [];
      try {
        // The figure is saved, then every place a result file was or could be becomes a link to
        // the server's secret.
        const p = await client.callTool({
          name: "create_plot",
          arguments: {
            query_id: queryId,
            plot_code: `import os, matplotlib.figure
df.plot(x='x', y='y')
real = matplotlib.figure.Figure.savefig
def hostile(self, path, *a, **k):
    real(self, path, *a, **k)
    for out in ['/out/plot.png', '/out/result.json', '/tmp/plot.png', '/tmp/result.json']:
        try:
            if os.path.lexists(out):
                os.remove(out)
            os.symlink('${dataDir}/link_secret', out)
        except OSError:
            pass
matplotlib.figure.Figure.savefig = hostile
`,
          },
        });
        ok(!p.isError, text(p));
        ok(!JSON.stringify(p).includes(secret));
        const link = /(http:\/\/\S+\/files\/\S+\.png\S*)/.exec(text(p))?.[1];
        ok(link, text(p));
        const served = new Uint8Array(await (await fetch(link)).arrayBuffer());
        equal(new TextDecoder().decode(served.slice(1, 4)), "PNG");
        ok(!new TextDecoder().decode(served).includes(secret), "the secret served at /files");

        const before = await rss(child.process.pid);
        const flood = await client.callTool({
          name: "analyze_data",
          arguments: {
            query_id: queryId,
            code: "import os\nfor _ in range(200):\n    os.write(1, b'x' * (1 << 20))",
          },
        });
        equal(flood.isError, true);
        match(text(flood), /straight to file descriptor 1 or 2/);
        const grew = await rss(child.process.pid) - before;
        ok(grew < 100 * 1048576, `server RSS grew by ${grew} bytes`);

        // Both slots taken by jobs that never end on their own: one blocked on a FIFO, one spinning.
        for (
          const code of [
            "import os\nos.mkfifo('/tmp/f')\nopen('/tmp/f').read()",
            "while True: pass",
          ]
        ) {
          hanging.push(
            client.callTool({ name: "analyze_data", arguments: { query_id: queryId, code } })
              .catch((e: unknown) => e),
          );
        }
        await new Promise((r) => setTimeout(r, 3000));
        const health = await fetch(`http://127.0.0.1:${port}/healthz`, {
          signal: AbortSignal.timeout(10_000),
        });
        await health.body?.cancel();
        equal(health.status, 200);
      } finally {
        const stopping = Date.now();
        child.process.kill("SIGTERM");
        equal((await child.process.status).code, 0);
        // Far below the 120 s job timeout: the running jobs were stopped, not waited for.
        ok(Date.now() - stopping < 30_000, `stopped after ${Date.now() - stopping} ms`);
        await Promise.all(hanging);
        await client.close().catch(() => {});
      }
      const leftovers = [];
      for await (const e of Deno.readDir(`${dataDir}/sandbox`)) leftovers.push(e.name);
      equal(leftovers.length, 0, "job folders are removed after each job");
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
});
