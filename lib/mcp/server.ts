import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { AjvJsonSchemaValidator } from "@modelcontextprotocol/sdk/validation/ajv-provider.js";
import type { ToolDeps } from "./deps.ts";
import { registerAll } from "./tools/mod.ts";

/** Name the server reports to MCP clients. */
export const SERVER_NAME = "ambient-sensors";

/** Version the server reports to MCP clients. */
export const SERVER_VERSION = "0.1.0";

const INSTRUCTIONS =
  `Ambient sensor data: ESP32 devices with SCD30 (CO2 ppm, temperature °C, humidity %RH) and BMP280 (pressure hPa, temperature °C) sensors, stored in PostgreSQL.

Typical flow:
1. get_database_schema once: tables, columns, units, row counts, time ranges, SQL hints.
2. list_sensors: map rooms and devices to sensor_id; see which sensors still report.
3. Quick answers without SQL: get_latest_readings (current values), get_sensor_history (time-bucketed series), get_device_status (online/silent/offline).
4. execute_sql_query: one read-only SELECT; aggregate in SQL (date_bin/date_trunc buckets, always a time filter). It returns a query_id, a preview and a CSV link.
5. analyze_data (pandas on df) or create_plot (matplotlib) with that query_id for statistics and charts.

State units with every number. Times are UTC. clear_query_cache removes cached results.`;

// One JSON Schema validator for every server: the SDK would build a new Ajv for each, which cost
// more CPU than the rest of a stateless request (see the mixed part of `deno task bench`).
const validator = new AjvJsonSchemaValidator();

/**
 * A new MCP server with every tool, resource and prompt registered. Stateless HTTP builds one per
 * request, so this must stay cheap: no I/O here.
 */
export function createMcpServer(deps: ToolDeps): McpServer {
  const server = new McpServer(
    { name: SERVER_NAME, version: SERVER_VERSION },
    // logging: tools send notifications/message (sandbox output, slow steps); the SDK answers
    // logging/setLevel.
    {
      instructions: INSTRUCTIONS,
      jsonSchemaValidator: validator,
      capabilities: { logging: {} },
    },
  );
  registerAll(server, deps);
  // Tools, resources and prompts are fixed at start, and a stateless HTTP server has no stream to
  // announce a change on: never advertise list_changed notifications that cannot come.
  const caps = server.server.getCapabilities();
  for (const key of ["tools", "resources", "prompts"] as const) {
    if (caps[key]) delete caps[key].listChanged;
  }
  return server;
}
