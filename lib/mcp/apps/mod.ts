/**
 * MCP Apps: interactive views hosts render for tool results (a `ui://` resource of type
 * `text/html;profile=mcp-app`, linked from a tool's `_meta.ui.resourceUri`).
 *
 * @module
 */
export {
  APP_HISTORY_TOOL,
  MCP_APP_MIME_TYPE,
  registerSensorApp,
  SENSOR_APP_TOOL_META,
  SENSOR_APP_URI,
} from "./sensor_app.ts";
