import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { encodeBase64 } from "./_base64.ts";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { NO_SANDBOX, sandboxErrorResult, unknownQuery } from "./_sandbox_error.ts";
import { type ToolExtra, withProgress } from "../_tool_progress.ts";

/** PNGs larger than this are linked, not sent inline (MCP clients choke on huge images). */
export const MAX_INLINE_PNG_BYTES = 4 * 1024 * 1024;

/** Input of `create_plot`. */
export const CreatePlotInput = {
  query_id: z.string().min(1).max(100).describe(
    "The query_id returned by execute_sql_query; its CSV is loaded as the pandas DataFrame `df`",
  ),
  plot_code: z.string().min(1).max(100_000).describe(
    "Python code that draws with matplotlib (`plt`) or pandas (`df.plot(...)`); the current figure is saved as PNG (default 10x5 inches, 100 dpi). Time columns are already datetimes in UTC (without a zone).",
  ),
};

/** Registers `create_plot`: matplotlib code on a cached query result → PNG image + signed link. */
export function registerCreatePlotTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("create_plot", {
    title: "Plot a query result with matplotlib",
    description:
      "Runs matplotlib/pandas plotting code on the CSV of an execute_sql_query result loaded as `df`, in an isolated sandbox, and returns the figure as a PNG image plus a download link.",
    inputSchema: CreatePlotInput,
    annotations: { readOnlyHint: true, openWorldHint: false },
  }, async ({ query_id, plot_code }: { query_id: string; plot_code: string }, extra: ToolExtra) => {
    if (!deps.sandbox) return { isError: true, content: [{ type: "text", text: NO_SANDBOX }] };
    const csvPath = await deps.results.csvPath(query_id);
    if (!csvPath) {
      return { isError: true, content: [{ type: "text", text: unknownQuery(query_id) }] };
    }
    const { plotId, path } = await deps.results.newPlot();
    try {
      const sandbox = deps.sandbox;
      await withProgress(
        extra,
        "plot",
        () => sandbox.run({ csvPath, code: plot_code, mode: "plot", pngPath: path }),
      );
      // Stored where the link (and, with PostgreSQL, every server instance) serves it.
      await deps.results.storePlot(plotId);
    } catch (error) {
      // No figure: drop the reserved plot so it is neither listed nor counted as cached.
      await deps.results.remove(plotId).catch(() => {});
      return sandboxErrorResult(error);
    }
    const url = await deps.results.fileUrl(plotId, "png");
    const { size } = await Deno.stat(path);
    if (size > MAX_INLINE_PNG_BYTES) {
      // Too big to put into the conversation: the link still serves it.
      return {
        content: [{
          type: "text",
          text: `Plot ${plotId} is ${
            (size / 1048576).toFixed(1)
          } MB, too large to show inline (limit ${
            MAX_INLINE_PNG_BYTES / 1048576
          } MB); download it from ${url}. For an inline image use a smaller figsize or dpi, or fewer points (resample in SQL).`,
        }],
      };
    }
    const data = encodeBase64(await Deno.readFile(path));
    return {
      content: [
        { type: "image", data, mimeType: "image/png" },
        { type: "text", text: `Plot ${plotId}: ${url}` },
      ],
    };
  });
}
