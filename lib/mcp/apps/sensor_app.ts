import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { errorResult } from "../tools/_error_result.ts";
import { QueryTimeout } from "../../db/mod.ts";
import { historyJson, loadHistory, RANGES } from "../../dashboard/mod.ts";
import { latestReadings, ReadingsError } from "../../readings/mod.ts";
import { appHtml } from "./_app_html.ts";

/** The MCP App resource that draws sensor histories and current readings. */
export const SENSOR_APP_URI = "ui://ambient-sensors/sensor-chart.html";

/** MIME type of an MCP App's HTML. */
export const MCP_APP_MIME_TYPE = "text/html;profile=mcp-app";

/** Name of the app-only tool the view calls to switch metric or range. */
export const APP_HISTORY_TOOL = "app_sensor_history";

/** `_meta` of a tool whose results the sensor app draws (model- and app-visible). */
export const SENSOR_APP_TOOL_META = {
  ui: { resourceUri: SENSOR_APP_URI },
  "ui/resourceUri": SENSOR_APP_URI,
};

const RESOURCE_UI_META = { ui: { prefersBorder: true, csp: {} } };

/**
 * Registers the sensor MCP App: the `ui://` resource (HTML with the chart shared with the
 * dashboard) and `app_sensor_history`, an app-only tool (`_meta.ui.visibility: ["app"]`) the view
 * calls to switch metric or range. Tools link to the view with `SENSOR_APP_TOOL_META`.
 */
export function registerSensorApp(server: McpServer, deps: ToolDeps): void {
  server.registerResource("sensor-chart", SENSOR_APP_URI, {
    title: "Sensor chart (MCP App)",
    description:
      "Interactive view for get_sensor_history and get_latest_readings: zoomable chart with hover values, metric and range switches.",
    mimeType: MCP_APP_MIME_TYPE,
    _meta: RESOURCE_UI_META,
  }, async (uri: URL) => ({
    contents: [{
      uri: uri.href,
      mimeType: MCP_APP_MIME_TYPE,
      text: await appHtml(),
      _meta: RESOURCE_UI_META,
    }],
  }));

  server.registerTool(APP_HISTORY_TOOL, {
    title: "Sensor history for the chart view",
    description:
      "Used by the sensor chart view (MCP App) to switch metric or range: the downsampled history of one sensor's metric over the last 24h, 7d, 30d or 1y, plus the sensor's metrics. Assistants should use get_sensor_history instead.",
    inputSchema: {
      sensor_id: z.number().int().positive().describe("The sensor"),
      metric: z.string().min(1).max(63).describe('Metric name, e.g. "co2"'),
      range: z.enum(Object.keys(RANGES) as [string, ...string[]]).default("24h").describe(
        "How far back from now",
      ),
    },
    annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    _meta: { ui: { resourceUri: SENSOR_APP_URI, visibility: ["app"] } },
  }, async ({ sensor_id, metric, range }: { sensor_id: number; metric: string; range: string }) => {
    try {
      const now = new Date();
      const [h, latest] = await Promise.all([
        loadHistory(deps.db, {
          sensorId: sensor_id,
          metric,
          range,
          now,
          timeoutMs: deps.config.query.timeoutS * 1000,
        }),
        latestReadings(deps.db, { sensorIds: [sensor_id], now }),
      ]);
      const metrics = [...new Set(latest.readings.map((r) => r.metric))];
      const json = historyJson(h);
      return {
        content: [{
          type: "text" as const,
          text: `${json.metric} of sensor ${sensor_id}, last ${range}: ${json.points.length} ` +
            `${json.bucket} buckets`,
        }],
        structuredContent: { ...json, range, metrics },
      };
    } catch (error) {
      if (error instanceof ReadingsError || error instanceof RangeError) {
        return errorResult(error.message);
      }
      if (error instanceof QueryTimeout) {
        return errorResult(`The history took longer than ${deps.config.query.timeoutS} s.`);
      }
      throw error;
    }
  });
}
