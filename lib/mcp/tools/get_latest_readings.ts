import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { SENSOR_APP_TOOL_META } from "../apps/mod.ts";
import { errorResult } from "./_error_result.ts";
import { DEVICE_TEXT_NOTE, deviceField, quoteDevice } from "./_device_text.ts";
import { capNote, LIST_CAP } from "./_cap_list.ts";
import {
  formatAge,
  formatValue,
  type LatestReading,
  latestReadings,
  ReadingsError,
} from "../../readings/mod.ts";

/** Input of `get_latest_readings`. */
export const GetLatestReadingsInput = {
  device: z.string().max(200).optional().describe(
    "Only this device: its device_id or its name (case-insensitive). Omit for every device.",
  ),
  location: z.string().max(200).optional().describe(
    'Only sensors in this room or at this placement, e.g. "bedroom" (the device\'s room: all its sensors) or "wardrobe shelf" (where one sensor sits); case, spaces and _ do not matter and a part of the name matches too. Omit for every location.',
  ),
};

/** Output of `get_latest_readings`: one row per sensor and metric. */
export const GetLatestReadingsOutput = {
  readings: z.array(z.object({
    device_id: z.string(),
    device_name: z.string().nullable(),
    location: z.string().nullable().describe("The sensor's placement, else its device's room"),
    room: z.string().nullable().describe("The device's room"),
    placement: z.string().nullable().describe("Where the sensor itself sits"),
    sensor_id: z.number().int(),
    sensor_type: z.string(),
    metric: z.string(),
    value: z.number(),
    unit: z.string().nullable(),
    time: z.string().describe("ISO 8601 UTC time of the reading"),
    age_s: z.number().describe("seconds since the reading"),
    stale: z.boolean().describe(
      "true when the reading is older than the monitor's INACTIVITY_THRESHOLD: the device may be silent",
    ),
  })).describe("Newest value of every metric of every matching sensor"),
};

/**
 * Registers `get_latest_readings`: the newest value of every metric per sensor, with units and
 * age, optionally for one device or location.
 */
export function registerGetLatestReadingsTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("get_latest_readings", {
    title: "Latest sensor readings",
    description:
      'Current conditions without writing SQL: the newest value of every metric of every sensor (or of one device or location), with its unit and age, e.g. "CO2 812 ppm, 40 s ago". ' +
      'Use it for questions like "how is the air in the bedroom right now?". Units: CO2 ppm, temperature °C, humidity %RH, pressure hPa. ' +
      "A reading older than a few minutes means the device may have gone silent. " +
      "For how a value changed over time use get_sensor_history; for anything else execute_sql_query. Fast on any table size (index lookups only).",
    inputSchema: GetLatestReadingsInput,
    outputSchema: GetLatestReadingsOutput,
    annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    _meta: SENSOR_APP_TOOL_META,
  }, async ({ device, location }: { device?: string; location?: string }) => {
    const staleAfterS = deps.config.monitor.inactivityThresholdS;
    let result;
    try {
      result = await latestReadings(deps.db, { device, location });
    } catch (error) {
      if (error instanceof ReadingsError) {
        return errorResult(error.message);
      }
      throw error;
    }
    // At most LIST_CAP sensors (in the order given), so thousands of devices stay one answer.
    const shownSensors = new Set<number>();
    for (const r of result.readings) {
      if (shownSensors.size >= LIST_CAP) break;
      shownSensors.add(r.sensorId);
    }
    const kept = result.readings.filter((r) => shownSensors.has(r.sensorId));
    const reporting = new Set(result.readings.map((r) => r.sensorId)).size;
    const readings = kept.map((r) => ({
      device_id: r.deviceId,
      device_name: deviceField(r.deviceName),
      location: deviceField(r.location),
      room: deviceField(r.room),
      placement: deviceField(r.placement),
      sensor_id: r.sensorId,
      sensor_type: r.sensorType,
      metric: r.metric,
      value: r.value,
      unit: r.unit,
      time: r.time.toISOString(),
      age_s: r.ageS,
      stale: r.ageS > staleAfterS,
    }));
    return {
      content: [{
        type: "text",
        text: describe(result.sensors.length, kept, staleAfterS, reporting) +
          (kept.length < result.readings.length
            ? "\n" + capNote({
              shown: shownSensors.size,
              total: reporting,
              noun: "sensors with readings",
              hint: "filter by device or location",
            })
            : ""),
      }],
      structuredContent: { readings },
    };
  });
}

const LABELS: Record<string, string> = { co2: "CO2" };

function describe(
  sensorCount: number,
  readings: LatestReading[],
  staleAfterS: number,
  withReadings?: number,
): string {
  if (sensorCount === 0) {
    return "No sensors are registered yet: devices appear once they publish over MQTT.";
  }
  const bySensor = new Map<number, LatestReading[]>();
  for (const r of readings) bySensor.set(r.sensorId, [...(bySensor.get(r.sensorId) ?? []), r]);
  const lines = [
    `Latest readings of ${bySensor.size} of ${sensorCount} matching sensors (${DEVICE_TEXT_NOTE}):`,
  ];
  for (const rs of bySensor.values()) {
    const s = rs[0];
    const name = s.deviceName && s.deviceName !== s.deviceId
      ? ` named ${quoteDevice(s.deviceName)}`
      : "";
    const newest = rs.reduce((a, b) => (b.time > a.time ? b : a));
    const sameTime = rs.every((r) => Math.abs(r.time.getTime() - newest.time.getTime()) < 1000);
    const values = rs.map((r) => {
      const v = `${LABELS[r.metric] ?? r.metric} ${formatValue(r.value, r.unit)}`;
      return sameTime ? v : `${v} (${formatAge(r.ageS)})`;
    });
    lines.push(
      `- ${s.deviceId}${name}${place(s)}, ${s.sensorType} ` +
        `(sensor ${s.sensorId}): ${values.join(", ")}, ${formatAge(newest.ageS)} ` +
        `(${newest.time.toISOString()})` +
        (newest.ageS > staleAfterS ? " — stale: the device may be silent" : ""),
    );
  }
  const reporting = withReadings ?? bySensor.size;
  if (reporting < sensorCount) {
    lines.push(`${sensorCount - reporting} matching sensor(s) have no readings yet.`);
  }
  return lines.join("\n");
}

/** ", bedroom (wardrobe shelf)": the room and, when it differs, where the sensor sits. */
function place(s: { room: string | null; placement: string | null }): string {
  const room = s.room ? quoteDevice(s.room) : "";
  const placement = s.placement ? quoteDevice(s.placement) : "";
  if (!room) return placement ? `, at ${placement}` : "";
  return placement && s.placement !== s.room ? `, at ${room} (${placement})` : `, at ${room}`;
}
