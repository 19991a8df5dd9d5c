/**
 * Every MCP tool, resource and prompt of the server. Each tool lives in its own file exporting
 * `registerXTool(server, deps)`; add it to `registerAll` below.
 *
 * @module
 */
import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { ToolDeps } from "../deps.ts";
import { registerAnalyzeDataTool } from "./analyze_data.ts";
import { registerCreatePlotTool } from "./create_plot.ts";

/** Registers every tool (and resource and prompt) on `server`. */
export function registerAll(server: McpServer, deps: ToolDeps): void {
  registerAnalyzeDataTool(server, deps);
  registerCreatePlotTool(server, deps);
}
