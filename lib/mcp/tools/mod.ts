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
import { registerGetDatabaseSchemaTool } from "./get_database_schema.ts";
import { registerGetDeviceStatusTool } from "./get_device_status.ts";
import { registerListSensorsTool } from "./list_sensors.ts";
import { registerGetLatestReadingsTool } from "./get_latest_readings.ts";
import { registerGetSensorHistoryTool } from "./get_sensor_history.ts";
import { registerExecuteSqlQueryTool } from "./execute_sql_query.ts";
import { registerClearQueryCacheTool } from "./clear_query_cache.ts";
import { registerGetAirSummaryTool } from "./get_air_summary.ts";
import { registerCompareAirTool } from "./compare_air.ts";
import { registerGetDailyProfileTool } from "./get_daily_profile.ts";
import { registerCheckDataQualityTool } from "./check_data_quality.ts";
import { registerResources } from "../resources.ts";
import { registerPrompts } from "../prompts.ts";
import { guardToolErrors } from "./_error_result.ts";
import { registerSensorApp } from "../apps/mod.ts";

/** Registers every tool (and resource and prompt) on `server`. */
export function registerAll(server: McpServer, deps: ToolDeps): void {
  guardToolErrors(server);
  registerGetDatabaseSchemaTool(server, deps);
  registerListSensorsTool(server, deps);
  registerAnalyzeDataTool(server, deps);
  registerCreatePlotTool(server, deps);
  registerGetDeviceStatusTool(server, deps);
  registerGetLatestReadingsTool(server, deps);
  registerGetSensorHistoryTool(server, deps);
  registerExecuteSqlQueryTool(server, deps);
  registerClearQueryCacheTool(server, deps);
  registerGetAirSummaryTool(server, deps);
  registerCompareAirTool(server, deps);
  registerGetDailyProfileTool(server, deps);
  registerCheckDataQualityTool(server, deps);
  registerResources(server, deps);
  registerPrompts(server, deps);
  registerSensorApp(server, deps);
}
