// Protocol details MCP clients notice: no list_changed on a server that can never send it, the
// logging capability with notifications/message, progress notifications for analyze_data and
// create_plot when the client sends a progress token, and error messages without a doubled
// "MCP error -32602:" prefix.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import {
  LoggingMessageNotificationSchema,
  type Progress,
} from "@modelcontextprotocol/sdk/types.js";
import { startTestServer } from "./fixtures/mcp_server.ts";

/** A sandbox that takes `ms` and prints to stdout and stderr, standing in for bwrap/docker. */
function slowSandbox(ms: number) {
  return {
    engine: "bwrap" as const,
    run: async (job: { mode: string; pngPath?: string }) => {
      await new Promise((r) => setTimeout(r, ms));
      if (job.pngPath) {
        // A 1x1 PNG.
        await Deno.writeFile(
          job.pngPath,
          Uint8Array.from(
            atob(
              "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
            ),
            (c) => c.charCodeAt(0),
          ),
        );
      }
      return {
        stdout: "42\n",
        stderr: "UserWarning: careful\n",
        elapsedMs: ms,
        pngPath: job.pngPath,
      };
    },
  };
}

Deno.test("initialize: logging advertised, list_changed never", async () => {
  await using server = await startTestServer();
  const client = await server.connect();
  const caps = client.getServerCapabilities()!;
  deepEqual(caps.logging, {});
  ok(caps.tools && caps.resources && caps.prompts);
  for (const key of ["tools", "resources", "prompts"] as const) {
    equal((caps[key] as { listChanged?: boolean }).listChanged, undefined, key);
  }
  deepEqual(await client.setLoggingLevel("warning"), {});
});

Deno.test("analyze_data and create_plot send progress for a progress token, and sandbox output as log messages", async () => {
  await using server = await startTestServer({ sandbox: slowSandbox(2500) });
  const client = await server.connect();
  const logs: { level: string; logger?: string; data: unknown }[] = [];
  client.setNotificationHandler(
    LoggingMessageNotificationSchema,
    (n: { params: { level: string; logger?: string; data: unknown } }) => {
      logs.push(n.params);
    },
  );
  const q = await client.callTool({
    name: "execute_sql_query",
    arguments: { sql: "select sensor_id, co2 from scd30_measurements limit 5" },
  });
  const queryId = (q.structuredContent as { query_id: string }).query_id;
  for (
    const [name, args] of [
      ["analyze_data", { query_id: queryId, code: "print(42)" }],
      ["create_plot", { query_id: queryId, plot_code: "plt.plot([1])" }],
    ] as const
  ) {
    const progress: Progress[] = [];
    const r = await client.callTool({ name, arguments: args }, undefined, {
      onprogress: (p: Progress) => progress.push(p),
    });
    ok(!r.isError, JSON.stringify(r.content));
    ok(progress.length >= 3, `${name}: start, heartbeat and end (${JSON.stringify(progress)})`);
    equal(progress[0].progress, 0);
    for (let i = 1; i < progress.length; i++) {
      ok(progress[i].progress > progress[i - 1].progress, "progress only grows");
    }
    const last = progress[progress.length - 1];
    equal(last.total, last.progress, "the last notification completes it");
    match(last.message ?? "", /finished/);
  }
  const stderr = logs.find((l) => l.logger === "sandbox");
  ok(stderr, `sandbox stderr as a log message: ${JSON.stringify(logs)}`);
  equal(stderr.level, "warning");
  match(String(stderr.data), /UserWarning: careful/);
});

Deno.test("resource errors carry the invalid-params code without a doubled prefix", async () => {
  await using server = await startTestServer();
  const client = await server.connect();
  for (const uri of ["sensor://abc", "sensor://999", "query://no-such-result"]) {
    let message = "";
    try {
      await client.readResource({ uri });
    } catch (error) {
      message = (error as Error).message;
      equal((error as { code?: number }).code, -32602, uri);
    }
    match(message, /^MCP error -32602: /, uri);
    equal(message.match(/MCP error/g)?.length, 1, `one prefix: ${message}`);
  }
});
