import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { NO_SANDBOX, sandboxErrorResult, unknownQuery } from "./_sandbox_error.ts";
import { logToClient, type ToolExtra, withProgress } from "../_tool_progress.ts";

/** Input of `analyze_data`. */
export const AnalyzeDataInput = {
  query_id: z.string().min(1).max(100).describe(
    "The query_id returned by execute_sql_query; its CSV is loaded as the pandas DataFrame `df`",
  ),
  code: z.string().min(1).max(100_000).describe(
    "Python code run on `df` with `pd`, `np` and `plt` available; print() what you want to see. Time columns are already datetimes in UTC (without a zone). No network or files.",
  ),
};

/** Registers `analyze_data`: pandas code on a cached query result, run in the sandbox. */
export function registerAnalyzeDataTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("analyze_data", {
    title: "Analyze a query result with pandas",
    description:
      "Runs Python (pandas/numpy) code on the CSV of an execute_sql_query result loaded as `df`, in an isolated sandbox, and returns what it prints (stdout/stderr, capped at 100 KB each).",
    inputSchema: AnalyzeDataInput,
    annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
  }, async ({ query_id, code }: { query_id: string; code: string }, extra: ToolExtra) => {
    if (!deps.sandbox) return { isError: true, content: [{ type: "text", text: NO_SANDBOX }] };
    const csvPath = await deps.results.csvPath(query_id);
    if (!csvPath) {
      return { isError: true, content: [{ type: "text", text: unknownQuery(query_id) }] };
    }
    try {
      const sandbox = deps.sandbox;
      const r = await withProgress(
        extra,
        "analysis",
        () => sandbox.run({ csvPath, code, mode: "analyze" }),
      );
      if (r.stderr) await logToClient(extra, "warning", "sandbox", r.stderr);
      let text = r.stdout || "(the code printed nothing; use print(...) to see values)";
      if (r.stderr) text += `\n--- stderr ---\n${r.stderr}`;
      return { content: [{ type: "text", text }] };
    } catch (error) {
      return sandboxErrorResult(error);
    }
  });
}
