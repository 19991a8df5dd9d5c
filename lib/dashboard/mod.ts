/**
 * The dashboard at `/` of `deno task serve`: page, assets and data routes, the login for a
 * token-protected server, and the chart files the MCP App shares.
 *
 * @module
 */
export {
  createDashboardHandler,
  type DashboardOptions,
  type DashboardRoutes,
  type RequestCheck,
} from "./dashboard_handler.ts";
export { type ChartAssets, chartAssets } from "./chart_assets.ts";
export { HISTORY_MAX_POINTS, historyJson, loadHistory, RANGES } from "./_history.ts";
