import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { Queryable } from "../../db/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { databaseErrorResult, errorResult } from "./_error_result.ts";
import { DEVICE_TEXT_NOTE, deviceField, quoteDevice } from "./_device_text.ts";
import { capNote, decodeCursor, encodeCursor, LIST_CAP } from "./_cap_list.ts";

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
  total: z.number().int().optional().describe("Sensors matching the request, on every page"),
  next_cursor: z.string().optional().describe(
    "Present when more sensors follow: pass it as cursor to get them",
  ),
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
  total: number;
}

/** Which sensors `loadSensors` returns: a device, a page after a cursor, at most `limit`. */
export interface SensorQuery {
  device?: string;
  /** The last (device_id, sensor_type) of the previous page. */
  after?: [string, string];
  limit?: number;
}

/**
 * Every sensor with its device, location (the sensor's own, else the device's), type, metrics
 * with units and the time of its newest reading. Metrics come from the `metrics` table and from
 * the columns of the sensor type's columnar table, so a new metric shows up without a unit.
 */
export async function loadSensors(
  db: Queryable,
  query: SensorQuery = {},
): Promise<SensorInfo[] & { total?: number }> {
  const device = query.device?.toLowerCase() ?? null;
  const [afterDevice, afterType] = query.after ?? [null, null];
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
    ),
    matching as (
      select s.sensor_id, s.device_id, d.device_name,
        coalesce(s.location, d.location) as location, s.sensor_type, d.status as device_status,
        s.last_seen, count(*) over () as total
      from sensors s join devices d on d.device_id = s.device_id
      where ${device}::text is null or lower(s.device_id) = ${device}::text
        or lower(d.device_name) = ${device}::text
    )
    select m.*,
      coalesce((select json_agg(json_build_object('metric', k.metric, 'unit', k.unit)
                                order by k.metric)
                from known k where k.sensor_type = m.sensor_type), '[]'::json) as metrics
    from matching m
    where ${afterDevice}::text is null
      or (m.device_id, m.sensor_type) > (${afterDevice}::text, ${afterType}::text)
    order by m.device_id, m.sensor_type
    limit ${query.limit ?? null}::int8`;
  const sensors: SensorInfo[] & { total?: number } = rows.map((r) => ({
    sensor_id: Number(r.sensor_id),
    device_id: r.device_id,
    device_name: deviceField(r.device_name),
    location: deviceField(r.location),
    sensor_type: r.sensor_type,
    device_status: deviceField(r.device_status) ?? "unknown",
    metrics: (typeof r.metrics === "string" ? JSON.parse(r.metrics) : r.metrics) as {
      metric: string;
      unit: string | null;
    }[],
    last_seen: r.last_seen === null ? null : new Date(r.last_seen).toISOString(),
  }));
  if (rows.length > 0) sensors.total = Number(rows[0].total);
  return sensors;
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
        `${s.device_name ? ` named ${quoteDevice(s.device_name)}` : ""}, location ${
          s.location ? quoteDevice(s.location) : "unknown"
        }, ` +
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
      "Lists every sensor: sensor_id (the key in the readings tables), device id and name, location (where the sensor is, used to answer questions about rooms), sensor type, the metrics it measures with units, and when its newest reading arrived. Use it to map a room or device name to sensor_id before writing SQL, and to spot sensors that stopped reporting. Long lists come in pages (200 by default): pass next_cursor as cursor for the next page, or filter by device.",
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
