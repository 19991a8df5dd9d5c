import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Queryable } from "../../db/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { databaseErrorResult } from "./_error_result.ts";
import { loadCatalog, sensorMetrics } from "../../readings/mod.ts";

const Sensor = z.object({
  sensor_id: z.number().describe("Use in SQL as `sensor_id` of the readings tables"),
  device_id: z.string(),
  device_name: z.string().nullable(),
  location: z.string().nullable().describe("The sensor's placement, else its device's room"),
  room: z.string().nullable().describe("The device's room, e.g. bedroom"),
  placement: z.string().nullable().describe('Where the sensor sits, e.g. "wardrobe shelf"'),
  sensor_type: z.string().describe(
    "e.g. scd30; columnar readings are in <sensor_type>_measurements",
  ),
  device_status: z.string().describe("Last status the device reported (online, offline, unknown)"),
  metrics: z.array(z.object({ metric: z.string(), unit: z.string().nullable() })).describe(
    "Metrics it has reported (with rollups kept; else every metric its type has)",
  ),
  last_seen: z.string().nullable().describe("Time of the newest stored reading, ISO 8601 UTC"),
});

/** Structured output of `list_sensors`. */
export const ListSensorsOutput = {
  sensors: z.array(Sensor),
};

/** One sensor as `list_sensors` reports it. */
export type SensorInfo = z.infer<typeof Sensor>;

/**
 * Every sensor with its device, room and placement, type, the metrics it has reported with
 * units and the time of its newest reading, from the one catalog query every readings answer
 * uses. A metric its type has a column for but that it never reported (a BMP280's humidity) is
 * not listed.
 */
export async function loadSensors(db: Queryable): Promise<SensorInfo[]> {
  const catalog = await loadCatalog(db);
  return catalog.sensors.map((s) => ({
    sensor_id: s.sensorId,
    device_id: s.deviceId,
    device_name: s.deviceName,
    location: s.location,
    room: s.room,
    placement: s.placement,
    sensor_type: s.sensorType,
    device_status: s.deviceStatus,
    metrics: sensorMetrics(catalog, s).map((metric) => ({
      metric,
      unit: catalog.units.get(`${s.sensorType}/${metric}`) ?? null,
    })),
    last_seen: s.lastSeen === null ? null : s.lastSeen.toISOString(),
  }));
}

/** Renders sensors as a compact text table for the tool result. */
export function formatSensors(sensors: SensorInfo[]): string {
  if (sensors.length === 0) {
    return "No sensors yet. Devices register when they publish capabilities or readings over MQTT (try `deno task simulate`).";
  }
  const lines = [`${sensors.length} sensor(s):`];
  for (const s of sensors) {
    const metrics = s.metrics.map((m) => m.unit ? `${m.metric} [${m.unit}]` : m.metric).join(", ");
    lines.push(
      `- sensor_id ${s.sensor_id}: ${s.sensor_type} on ${s.device_id}` +
        `${s.device_name ? ` "${s.device_name}"` : ""}, room ${s.room ?? "unknown"}` +
        `${s.placement && s.placement !== s.room ? ` (${s.placement})` : ""}, ` +
        `device ${s.device_status}, last reading ${s.last_seen ?? "never"}; metrics: ${
          metrics || "none"
        }`,
    );
  }
  return lines.join("\n");
}

/** Registers `list_sensors`: every sensor with device, location, type, metrics, last reading. */
export function registerListSensorsTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("list_sensors", {
    title: "List sensors",
    description:
      "Lists every sensor: sensor_id (the key in the readings tables), device id and name, room (the device's) and placement (where the sensor sits), used to answer questions about rooms, sensor type, the metrics it has reported with units, and when its newest reading arrived. Use it to map a room or device name to sensor_id before writing SQL, and to spot sensors that stopped reporting.",
    inputSchema: {},
    outputSchema: ListSensorsOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async () => {
    let sensors: SensorInfo[];
    try {
      sensors = await loadSensors(deps.db);
    } catch (error) {
      return databaseErrorResult("list_sensors", "list sensors", error);
    }
    return {
      structuredContent: { sensors },
      content: [{ type: "text", text: formatSensors(sensors) }],
    };
  });
}
