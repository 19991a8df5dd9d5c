import { equal, match, ok } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { ResultStore, ToolDeps } from "../lib/mcp/deps.ts";
import { registerAnalyzeDataTool } from "../lib/mcp/tools/analyze_data.ts";
import { MAX_INLINE_PNG_BYTES, registerCreatePlotTool } from "../lib/mcp/tools/create_plot.ts";
import { createBwrapSandbox, SandboxUnavailable } from "../lib/sandbox/mod.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";

const available = await sandboxAvailable();
if (!available) console.warn("SKIPPING sandbox tool tests: bwrap or python3 with pandas missing");

/** A tiny ResultStore over a temp dir (the real one lives in lib/results/). */
function fakeResults(dir: string): ResultStore {
  return {
    saveCsv: () => Promise.reject(new Error("not used")),
    csvPath: (id) => Promise.resolve(id === "q1" ? `${dir}/q1.csv` : undefined),
    newPlot: () => Promise.resolve({ plotId: "p1", path: `${dir}/p1.png` }),
    storePlot: () => Promise.resolve(),
    fileUrl: (id, ext) => Promise.resolve(`http://127.0.0.1:8000/files/${id}.${ext}?sig=x`),
    remove: () => Promise.resolve([]),
    list: () => Promise.resolve([]),
    filePath: () => Promise.resolve(undefined),
    openFile: () => Promise.resolve(undefined),
    verifyLink: () => Promise.resolve(false),
  };
}

async function connect(deps: Partial<ToolDeps>) {
  const server = new McpServer({ name: "test", version: "0" });
  registerAnalyzeDataTool(server, deps as ToolDeps);
  registerCreatePlotTool(server, deps as ToolDeps);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "c", version: "0" });
  await Promise.all([server.connect(a), client.connect(b)]);
  return {
    client,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
    },
  };
}

type Content = { type: string; text?: string; data?: string; mimeType?: string }[];

Deno.test({
  name: "analyze_data and create_plot return output, a PNG image and its link",
  ignore: !available,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${dir}/q1.csv`,
        "time,co2\n2024-01-01T00:00:00Z,400\n2024-01-01T01:00:00Z,500\n",
      );
      const sandbox = createBwrapSandbox({ memoryMb: 128, timeoutS: 10 });
      await using c = await connect({ results: fakeResults(dir), sandbox });
      const a = await c.client.callTool({
        name: "analyze_data",
        arguments: { query_id: "q1", code: "print(df.co2.mean())" },
      });
      equal(a.isError, undefined);
      equal((a.content as Content)[0].text, "450.0\n");
      const p = await c.client.callTool({
        name: "create_plot",
        arguments: { query_id: "q1", plot_code: "df.plot(x='time', y='co2')" },
      });
      const content = p.content as Content;
      equal(content[0].type, "image");
      equal(content[0].mimeType, "image/png");
      ok(atob(content[0].data!).startsWith("\x89PNG"));
      match(content[1].text!, /\/files\/p1\.png/);
      const bad = await c.client.callTool({
        name: "analyze_data",
        arguments: { query_id: "q1", code: "1/0" },
      });
      equal(bad.isError, true);
      match((bad.content as Content)[0].text!, /ZeroDivisionError[\s\S]*Fix the code/);
      const gone = await c.client.callTool({
        name: "create_plot",
        arguments: { query_id: "nope", plot_code: "plt.plot([1])" },
      });
      equal(gone.isError, true);
      match((gone.content as Content)[0].text!, /unknown or expired[\s\S]*execute_sql_query/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("analyze_data says the sandbox is disabled when there is none", async () => {
  await using c = await connect({ results: fakeResults("/nonexistent") });
  const r = await c.client.callTool({
    name: "analyze_data",
    arguments: { query_id: "q1", code: "print(1)" },
  });
  equal(r.isError, true);
  match((r.content as Content)[0].text!, /sandbox is disabled/);
});

Deno.test("create_plot that fails leaves no plot behind and hides unexpected failure details", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/q1.csv`, "x\n1\n");
    const removed: (string | undefined)[] = [];
    const results = {
      ...fakeResults(dir),
      remove: (id?: string) => (removed.push(id), Promise.resolve([])),
    };
    const busy = {
      engine: "bwrap" as const,
      run: () =>
        Promise.reject(new SandboxUnavailable("The sandbox is busy; try again in a moment")),
    };
    {
      await using c = await connect({ results, sandbox: busy });
      const r = await c.client.callTool({
        name: "create_plot",
        arguments: { query_id: "q1", plot_code: "plt.plot([1])" },
      });
      equal(r.isError, true);
      match((r.content as Content)[0].text!, /busy/);
      equal(removed.join(), "p1", "the reserved plot is released");
    }
    const broken = {
      engine: "bwrap" as const,
      run: () => Promise.reject(new Deno.errors.PermissionDenied(`cannot write ${dir}/secret`)),
    };
    await using c = await connect({ results, sandbox: broken });
    const r = await c.client.callTool({
      name: "analyze_data",
      arguments: { query_id: "q1", code: "print(1)" },
    });
    equal(r.isError, true);
    const text = (r.content as Content)[0].text!;
    match(text, /problem on the server/);
    ok(!text.includes(dir), "no server path in the message");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("create_plot links a huge PNG instead of sending it inline", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/q1.csv`, "x\n1\n");
    const writesHugePng = {
      engine: "bwrap" as const,
      async run(job: { pngPath?: string }) {
        const bytes = new Uint8Array(MAX_INLINE_PNG_BYTES + 1);
        bytes.set([0x89, 0x50, 0x4e, 0x47]);
        await Deno.writeFile(job.pngPath!, bytes);
        return { stdout: "", stderr: "", pngPath: job.pngPath, elapsedMs: 1 };
      },
    };
    await using c = await connect({ results: fakeResults(dir), sandbox: writesHugePng });
    const r = await c.client.callTool({
      name: "create_plot",
      arguments: { query_id: "q1", plot_code: "plt.imshow(np.random.rand(3000, 3000))" },
    });
    equal(r.isError, undefined);
    const content = r.content as Content;
    equal(content.filter((x) => x.type === "image").length, 0, "no inline image");
    match(content[0].text!, /too large to show inline[\s\S]*\/files\/p1\.png[\s\S]*figsize/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
