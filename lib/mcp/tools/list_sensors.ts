import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Queryable } from "../../db/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { databaseErrorResult } from "./_error_result.ts";

const Sensor = z.object({
  sensor_id: z.number().describe("Use in SQL as `sensor_id` of the readings tables"),
  device_id: z.string(),
  device_name: z.string().nullable(),
  location: z.string().nullable().describe("The sensor's location, else its device's"),
  sensor_type: z.string().describe(
    "e.g. scd30; columnar readings are in <sensor_type>_measurements",
  ),
  device_status: z.string().describe("Last status the device reported (online, offline, unknown)"),
  metrics: z.array(z.object({ metric: z.string(), unit: z.string().nullable() })),
  last_seen: z.string().nullable().describe("Time of the newest stored reading, ISO 8601 UTC"),
});

/** Structured output of `list_sensors`. */
export const ListSensorsOutput = {
  sensors: z.array(Sensor),
};

/** One sensor as `list_sensors` reports it. */
export type SensorInfo = z.infer<typeof Sensor>;

interface SensorRow {
  sensor_id: number;
  device_id: string;
  device_name: string | null;
  location: string | null;
  sensor_type: string;
  device_status: string;
  last_seen: Date | string | null;
}

/**
 * Every sensor with its device, location (the sensor's own, else the device's), type, metrics
 * with units and the time of its newest reading. Metrics come from the `metrics` table and from
 * the columns of the sensor type's columnar table, so a new metric shows up without a unit.
 */
export async function loadSensors(db: Queryable): Promise<SensorInfo[]> {
  // One statement: the embedded database serialises every round trip.
  const rows = await db.sql<SensorRow & { metrics: unknown }>`
    with known as (
      select sensor_type, metric, unit from metrics
      union
      select regexp_replace(c.relname, '_measurements$', ''), a.attname::text, null
      from pg_attribute a
      join pg_class c on c.oid = a.attrelid
      join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname ~ '_measurements$'
        and a.attnum > 0 and not a.attisdropped and a.attname not in ('time', 'sensor_id')
        and a.atttypid = 'double precision'::regtype
        and not exists (select from metrics m
          where m.sensor_type = regexp_replace(c.relname, '_measurements$', '')
            and m.metric = a.attname)
    )
    select s.sensor_id, s.device_id, d.device_name, coalesce(s.location, d.location) as location,
      s.sensor_type, d.status as device_status, s.last_seen,
      coalesce((select json_agg(json_build_object('metric', k.metric, 'unit', k.unit)
                                order by k.metric)
                from known k where k.sensor_type = s.sensor_type), '[]'::json) as metrics
    from sensors s join devices d on d.device_id = s.device_id
    order by s.device_id, s.sensor_type`;
  return rows.map((r) => ({
    sensor_id: Number(r.sensor_id),
    device_id: r.device_id,
    device_name: r.device_name,
    location: r.location,
    sensor_type: r.sensor_type,
    device_status: r.device_status,
    metrics: (typeof r.metrics === "string" ? JSON.parse(r.metrics) : r.metrics) as {
      metric: string;
      unit: string | null;
    }[],
    last_seen: r.last_seen === null ? null : new Date(r.last_seen).toISOString(),
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
        `${s.device_name ? ` "${s.device_name}"` : ""}, location ${s.location ?? "unknown"}, ` +
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
      "Lists every sensor: sensor_id (the key in the readings tables), device id and name, location (where the sensor is, used to answer questions about rooms), sensor type, the metrics it measures with units, and when its newest reading arrived. Use it to map a room or device name to sensor_id before writing SQL, and to spot sensors that stopped reporting.",
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
