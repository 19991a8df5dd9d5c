import { equal, match, ok } from "node:assert/strict";
import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { ResultStore, ToolDeps } from "../lib/mcp/deps.ts";
import { registerAnalyzeDataTool } from "../lib/mcp/tools/analyze_data.ts";
import { MAX_INLINE_PNG_BYTES, registerCreatePlotTool } from "../lib/mcp/tools/create_plot.ts";
import { createBwrapSandbox, type Sandbox, SandboxUnavailable } from "../lib/sandbox/mod.ts";
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

/**
 * Wraps the figure's savefig: the real figure is saved (so the job succeeds), then `body` runs
 * with `out` set to each place a result file was (`/out`) or could be expected, replacing it.
 */
const replaceSavefig = (body: string) =>
  `import os, matplotlib.figure\nplt.plot([1, 2, 3])\nreal = matplotlib.figure.Figure.savefig\n` +
  `def hostile(self, path, *a, **k):\n    real(self, path, *a, **k)\n` +
  `    for out in ['/out/plot.png', '/tmp/plot.png', '/tmp/out/plot.png', '/tmp/result.json']:\n` +
  `        try:\n            os.makedirs(os.path.dirname(out), exist_ok=True)\n` +
  `            if os.path.lexists(out):\n                os.remove(out)\n            ${body}\n` +
  `        except OSError:\n            pass\n` +
  `matplotlib.figure.Figure.savefig = hostile\n`;

/** Swaps the runner's frame writer: forged results on the channel the host reads. */
const forgeFrames = (body: string) =>
  `import __main__, json, os\nplt.plot([1, 2, 3])\nreal_send = __main__.send\n` +
  `def hostile(fd, kind, payload):\n    ${body}\n__main__.send = hostile\n`;

Deno.test({
  name: "create_plot and analyze_data never return host files the job links, nor block on them",
  ignore: !available,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/q1.csv`, "x\n1\n2\n");
      const secret = `secret-${crypto.randomUUID()}`;
      await Deno.writeTextFile(`${dir}/link_secret`, secret);
      const sandbox: Sandbox = createBwrapSandbox({ memoryMb: 128, timeoutS: 60 });
      await using c = await connect({ results: fakeResults(dir), sandbox });
      const link = `'${dir}/link_secret'`;
      const everywhere = `for d in ['/out', '/tmp', '/job', '/']:
    for n in ['plot.png', 'result.json']:
        try:
            os.symlink(${link}, os.path.join(d, n))
        except OSError:
            pass
`;
      const cases = {
        "a link to a host secret as the plot": replaceSavefig(`os.symlink(${link}, out)`),
        "a link to /dev/zero as the plot": replaceSavefig("os.symlink('/dev/zero', out)"),
        "a FIFO as the plot": replaceSavefig("os.mkfifo(out)"),
        "a directory named like the plot": replaceSavefig("os.mkdir(out)"),
        "links to the secret wherever results used to be":
          `import os\nplt.plot([1])\n${everywhere}`,
        "an endless PNG frame": forgeFrames(
          "os.write(fd, b'png 999999999\\n')\n    while True: os.write(fd, bytes(1 << 20))",
        ),
      };
      const refused: string[] = [];
      for (const [name, plot_code] of Object.entries(cases)) {
        const started = Date.now();
        const r = await c.client.callTool({
          name: "create_plot",
          arguments: { query_id: "q1", plot_code },
        });
        const all = JSON.stringify(r);
        ok(!all.includes(secret), `${name}: the secret reached the client`);
        ok(all.length < 1024 * 1024, `${name}: ${all.length} bytes answered`);
        ok(Date.now() - started < 50_000, `${name}: took ${Date.now() - started} ms`);
        if (r.isError) refused.push(`${name}: ${(r.content as Content)[0].text}`);
        const image = (r.content as Content).find((x) => x.type === "image");
        if (image) ok(!atob(image.data!).includes(secret), `${name}: the secret as the image`);
        if (!r.isError) ok(atob(image!.data!).startsWith("\x89PNG"), name);
        const stored = await Deno.readFile(`${dir}/p1.png`).catch(() => new Uint8Array());
        ok(
          !new TextDecoder().decode(stored).includes(secret),
          `${name}: secret stored as the plot`,
        );
        await Deno.remove(`${dir}/p1.png`).catch(() => {});
      }
      // The links, FIFOs and folders change nothing; only the endless frame is refused.
      equal(refused.length, 1, refused.join("\n"));
      match(refused[0], /endless PNG frame: The job sent more than 17 MB of results/);
      const a = await c.client.callTool({
        name: "analyze_data",
        arguments: { query_id: "q1", code: `import os\n${everywhere}print('done')` },
      });
      equal((a.content as Content)[0].text, "done\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "forged results are held to the host's caps: 60 MB of stdout is refused, 900 KB is cut",
  ignore: !available,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(`${dir}/q1.csv`, "x\n1\n");
      const sandbox = createBwrapSandbox({ memoryMb: 128, timeoutS: 60 });
      await using c = await connect({ results: fakeResults(dir), sandbox });
      // The frame is streamed in 64 KB pieces, so the job itself never holds it in memory.
      const forged = (kb: number) =>
        forgeFrames(
          `head, tail = b'{"status": "ok", "stdout": "', b'", "stderr": "B", "error": null}'
    os.write(fd, b'result %d\\n' % (len(head) + ${kb} * 1024 + len(tail)))
    os.write(fd, head)
    for _ in range(${kb} // 64):
        os.write(fd, b'A' * 65536)
    os.write(fd, tail)`,
        ).replace("plt.plot([1, 2, 3])\n", "");
      const before = Deno.memoryUsage().rss;
      const huge = await c.client.callTool({
        name: "analyze_data",
        arguments: { query_id: "q1", code: forged(60 * 1024) },
      });
      equal(huge.isError, true);
      match((huge.content as Content)[0].text!, /more than 17 MB of results/);
      const cutOne = await c.client.callTool({
        name: "analyze_data",
        arguments: { query_id: "q1", code: forged(896) },
      });
      const text = (cutOne.content as Content)[0].text!;
      equal(cutOne.isError, undefined);
      ok(text.length < 101 * 1024 + 100, `${text.length} characters`);
      match(text, /^A{102400}\n\[output cut at 100 KB\]\n--- stderr ---\nB$/);
      ok(Deno.memoryUsage().rss - before < 128 * 1048576, "the host held the forged output");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
