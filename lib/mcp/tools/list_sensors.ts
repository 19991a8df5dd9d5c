import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Queryable } from "../../db/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { databaseErrorResult, errorResult } from "./_error_result.ts";
import { DEVICE_TEXT_NOTE, deviceField, quoteDevice } from "./_device_text.ts";
import { capNote, decodeCursor, encodeCursor, LIST_CAP } from "./_cap_list.ts";
import { loadCatalog, sensorMetrics } from "../../readings/mod.ts";

/** Input of `list_sensors`: everything, one device, or one page of a long list. */
export const ListSensorsInput = {
  device: z.string().trim().min(1).max(200).optional().describe(
    "Only this device: its device_id or its name (case-insensitive)",
  ),
  limit: z.number().int().min(1).max(1000).optional().describe(
    `Most sensors in the answer (default ${LIST_CAP})`,
  ),
  cursor: z.string().max(400).optional().describe(
    "next_cursor of the previous answer, for the next page",
  ),
};

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
  total: z.number().int().optional().describe("Sensors matching the request, on every page"),
  next_cursor: z.string().optional().describe(
    "Present when more sensors follow: pass it as cursor to get them",
  ),
};

/** One sensor as `list_sensors` reports it. */
export type SensorInfo = z.infer<typeof Sensor>;

/** Which sensors `loadSensors` returns: a device, a page after a cursor, at most `limit`. */
export interface SensorQuery {
  device?: string;
  /** The last (device_id, sensor_type) of the previous page. */
  after?: [string, string];
  limit?: number;
}

/**
 * Every sensor with its device, room and placement, type, the metrics it has reported with
 * units and the time of its newest reading, from the one catalog query every readings answer
 * uses. A metric its type has a column for but that it never reported (a BMP280's humidity) is
 * not listed.
 */
export async function loadSensors(
  db: Queryable,
  query: SensorQuery = {},
): Promise<SensorInfo[] & { total?: number }> {
  const catalog = await loadCatalog(db);
  const device = query.device?.toLowerCase();
  const matching = catalog.sensors
    .filter((s) =>
      device === undefined || s.deviceId.toLowerCase() === device ||
      s.deviceName?.toLowerCase() === device
    )
    .sort((a, b) => cmp(a.deviceId, b.deviceId) || cmp(a.sensorType, b.sensorType));
  const [afterDevice, afterType] = query.after ?? [];
  const page = matching
    .filter((s) =>
      afterDevice === undefined ||
      cmp(s.deviceId, afterDevice) > 0 ||
      (s.deviceId === afterDevice && cmp(s.sensorType, afterType!) > 0)
    )
    .slice(0, query.limit ?? Infinity);
  const sensors: SensorInfo[] & { total?: number } = page.map((s) => ({
    sensor_id: s.sensorId,
    device_id: s.deviceId,
    device_name: deviceField(s.deviceName),
    location: deviceField(s.location),
    room: deviceField(s.room),
    placement: deviceField(s.placement),
    sensor_type: s.sensorType,
    device_status: deviceField(s.deviceStatus) ?? "unknown",
    metrics: sensorMetrics(catalog, s).map((metric) => ({
      metric,
      unit: catalog.units.get(`${s.sensorType}/${metric}`) ?? null,
    })),
    last_seen: s.lastSeen === null ? null : s.lastSeen.toISOString(),
  }));
  sensors.total = matching.length;
  return sensors;
}

/** Code-point order, the same on every database collation. */
function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Renders sensors as a compact text table for the tool result. */
export function formatSensors(sensors: SensorInfo[]): string {
  if (sensors.length === 0) {
    return "No sensors yet. Devices register when they publish capabilities or readings over MQTT (try `deno task simulate`).";
  }
  const lines = [`${sensors.length} sensor(s) (${DEVICE_TEXT_NOTE}):`];
  for (const s of sensors) {
    const metrics = s.metrics.map((m) => m.unit ? `${m.metric} [${m.unit}]` : m.metric).join(", ");
    lines.push(
      `- sensor_id ${s.sensor_id}: ${s.sensor_type} on ${s.device_id}` +
        `${s.device_name ? ` named ${quoteDevice(s.device_name)}` : ""}, room ${
          s.room ? quoteDevice(s.room) : "unknown"
        }` +
        `${s.placement && s.placement !== s.room ? ` (${quoteDevice(s.placement)})` : ""}, ` +
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
      "Lists every sensor: sensor_id (the key in the readings tables), device id and name, room (the device's) and placement (where the sensor sits), used to answer questions about rooms, sensor type, the metrics it has reported with units, and when its newest reading arrived. Use it to map a room or device name to sensor_id before writing SQL, and to spot sensors that stopped reporting. Long lists come in pages (200 by default): pass next_cursor as cursor for the next page, or filter by device.",
    inputSchema: ListSensorsInput,
    outputSchema: ListSensorsOutput,
    annotations: { readOnlyHint: true, idempotentHint: true, openWorldHint: false },
  }, async ({ device, limit, cursor }: { device?: string; limit?: number; cursor?: string }) => {
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    if (after === null) {
      return errorResult("cursor is not a next_cursor of list_sensors: omit it to start again.");
    }
    const max = limit ?? LIST_CAP;
    let page: SensorInfo[] & { total?: number };
    try {
      page = await loadSensors(deps.db, { device, after, limit: max + 1 });
    } catch (error) {
      return databaseErrorResult("list_sensors", "list sensors", error);
    }
    const sensors = page.slice(0, max);
    const more = page.length > max;
    const last = sensors.at(-1);
    const nextCursor = more && last ? encodeCursor([last.device_id, last.sensor_type]) : undefined;
    let text = formatSensors(sensors);
    if (sensors.length === 0 && (device || cursor)) {
      text = device
        ? `No sensor on a device with the id or name "${device.slice(0, 200)}".`
        : "No more sensors after this cursor.";
    } else if (more || after) {
      text += "\n" + capNote({
        shown: sensors.length,
        total: page.total ?? sensors.length,
        noun: "sensors",
        hint: "filter by device (its id or name), or pass next_cursor as cursor for the next page",
      });
    }
    return {
      structuredContent: {
        sensors,
        total: page.total ?? 0,
        ...(nextCursor ? { next_cursor: nextCursor } : {}),
      },
      content: [{ type: "text", text }],
    };
  });
}
