import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { SENSOR_APP_TOOL_META } from "../apps/mod.ts";
import { errorResult } from "./_error_result.ts";
import { timeArg } from "./_air_args.ts";
import { QueryTimeout } from "../../db/mod.ts";
import {
  formatValue,
  ReadingsError,
  type SensorHistory,
  sensorHistory,
} from "../../readings/mod.ts";

/** Largest `max_points` accepted: more would flood an assistant's context. */
export const MAX_POINTS_LIMIT = 5000;
/** Points listed in the text answer; all of them are in the structured output and the CSV. */
const TEXT_POINTS = 200;

const timeInput = (what: string, fallback: string) =>
  z.union([z.string().max(100), z.number()]).optional().describe(
    `${what} of the period (default ${fallback}). ISO 8601 ("2024-01-15", "2024-01-15T08:30:00+01:00"; no zone = UTC), relative ("-24h", "7d" = 7 days ago, "-30m", "-2w"), "now", or unix seconds.`,
  );

/** Input of `get_sensor_history`. */
export const GetSensorHistoryInput = {
  sensor_id: z.number().int().positive().optional().describe(
    "The sensor (see list_sensors or get_latest_readings). Give this or device.",
  ),
  device: z.string().max(200).optional().describe(
    "Device id or name (case-insensitive), instead of sensor_id; add sensor_type when the device has several sensors measuring the metric.",
  ),
  sensor_type: z.string().max(64).optional().describe(
    'With device: which of its sensors, e.g. "scd30" or "bmp280" (both measure temperature).',
  ),
  metric: z.string().min(1).max(63).describe(
    'Metric name, e.g. "co2" (ppm), "temperature" (°C), "humidity" (%RH), "pressure" (hPa).',
  ),
  start: timeInput("Start (included)", "-24h"),
  end: timeInput("End (excluded)", "now"),
  max_points: z.number().int().min(1).max(MAX_POINTS_LIMIT).optional().describe(
    `At most this many buckets come back (default 500, at most ${MAX_POINTS_LIMIT}); the bucket width is rounded up to 1s, 5s, 10s, 30s, 1m, 5m, 10m, 15m, 30m, 1h … 1d, 7d.`,
  ),
};

const point = z.object({
  time: z.string().describe("start of the bucket, ISO 8601 UTC"),
  avg: z.number(),
  min: z.number(),
  max: z.number(),
  count: z.number().int().describe("readings in the bucket"),
});

/** Output of `get_sensor_history`. */
export const GetSensorHistoryOutput = {
  query_id: z.string().describe(
    "Pass to create_plot or analyze_data (columns time, avg, min, max, count)",
  ),
  csv_url: z.string().describe("Download link of the CSV"),
  bucket: z.string().describe('Bucket width, e.g. "5m"'),
  bucket_seconds: z.number(),
  sensor: z.object({
    sensor_id: z.number().int(),
    device_id: z.string(),
    device_name: z.string().nullable(),
    sensor_type: z.string(),
    location: z.string().nullable(),
  }),
  metric: z.string(),
  unit: z.string().nullable(),
  start: z.string(),
  end: z.string(),
  source: z.enum(["raw", "rollup_1m", "rollup_1h", "rollup_1d"]).describe(
    "Coarsest source used: raw readings, or the minute/hour/day rollups (exact: avg = sum / count); the period's edges come from finer sources",
  ),
  gaps: z.array(z.string()).describe(
    "Start of every bucket without a reading (the device was off): such buckets are absent from points, never interpolated; at most 1000 listed",
  ),
  points: z.array(point),
};

type Args = {
  sensor_id?: number;
  device?: string;
  sensor_type?: string;
  metric: string;
  start?: string | number;
  end?: string | number;
  max_points?: number;
};

/**
 * Registers `get_sensor_history`: avg/min/max/count of one metric per time bucket, never more
 * than `max_points` rows, saved as a query result for create_plot and analyze_data.
 */
export function registerGetSensorHistoryTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("get_sensor_history", {
    title: "Sensor history (downsampled)",
    description:
      'How one metric of one sensor changed over a period, without writing SQL: e.g. "CO2 in the office this week". ' +
      "Returns avg/min/max/count per time bucket, computed in the database, with the bucket width chosen so that no more than max_points (default 500) rows come back, however many readings the period holds. " +
      "Long periods are answered from the minute, hour and day rollups in milliseconds (source says which); buckets without readings are listed in gaps and absent from points. " +
      "Pick the sensor by sensor_id, or by device (+ sensor_type when the device has several sensors with that metric). " +
      "Times: ISO 8601 or relative (-24h, 7d, now); defaults: the last 24 hours. " +
      "The result is also saved as a query_id (columns time, avg, min, max, count) that create_plot and analyze_data accept directly. " +
      "Use execute_sql_query instead for raw rows, several sensors in one table, or other aggregates.",
    inputSchema: GetSensorHistoryInput,
    outputSchema: GetSensorHistoryOutput,
    annotations: { readOnlyHint: true, openWorldHint: false, idempotentHint: true },
    _meta: SENSOR_APP_TOOL_META,
  }, async (args: Args) => {
    const now = new Date();
    let history: SensorHistory;
    try {
      const start = timeArg("start", args.start ?? "-24h", now);
      const end = timeArg("end", args.end ?? "now", now);
      history = await sensorHistory(deps.db, {
        sensorId: args.sensor_id,
        device: args.device,
        sensorType: args.sensor_type,
        metric: args.metric,
        start,
        end,
        maxPoints: args.max_points ?? 500,
        timeoutMs: deps.config.query.timeoutS * 1000,
      });
    } catch (error) {
      if (error instanceof ReadingsError) {
        return errorResult(error.message);
      }
      if (error instanceof QueryTimeout) {
        const text = `The history was cancelled after ${deps.config.query.timeoutS} s ` +
          "(QUERY_TIMEOUT_S): the period holds too many readings to aggregate in time. " +
          "Ask for a shorter period.";
        return errorResult(text);
      }
      throw error;
    }
    const points = history.points.map((p) => ({
      time: p.time.toISOString(),
      avg: p.avg,
      min: p.min,
      max: p.max,
      count: p.count,
    }));
    const saved = await deps.results.saveCsv(
      ["time", "avg", "min", "max", "count"],
      points.map((p) => [p.time, p.avg, p.min, p.max, p.count]),
    );
    const csvUrl = await deps.results.fileUrl(saved.queryId, "csv");
    const s = history.sensor;
    return {
      content: [{ type: "text", text: describe(history, saved.queryId, csvUrl) }],
      structuredContent: {
        query_id: saved.queryId,
        csv_url: csvUrl,
        bucket: history.bucket.label,
        bucket_seconds: history.bucket.seconds,
        sensor: {
          sensor_id: s.sensorId,
          device_id: s.deviceId,
          device_name: s.deviceName,
          sensor_type: s.sensorType,
          location: s.location,
        },
        metric: history.metric,
        unit: history.unit,
        start: history.start.toISOString(),
        end: history.end.toISOString(),
        source: history.source,
        gaps: history.gaps.map((g) => g.toISOString()),
        points,
      },
    };
  });
}

function describe(h: SensorHistory, queryId: string, csvUrl: string): string {
  const s = h.sensor;
  const where = `${s.deviceId}${
    s.location ? ` (${s.location})` : ""
  }, ${s.sensorType} sensor ${s.sensorId}`;
  const head = `${h.metric}${h.unit ? ` [${h.unit}]` : ""} of ${where}, ` +
    `${h.start.toISOString()} → ${h.end.toISOString()}, ${h.bucket.label} buckets from ${h.source}`;
  if (h.points.length === 0) {
    return `${head}: no readings in this period. Try a longer period or check the device with get_latest_readings.`;
  }
  let total = 0, sum = 0;
  let lo = h.points[0], hi = h.points[0];
  for (const p of h.points) {
    total += p.count;
    sum += p.avg * p.count;
    if (p.min < lo.min) lo = p;
    if (p.max > hi.max) hi = p;
  }
  const lines = [
    `${head}: ${h.points.length} points from ${total.toLocaleString("en-US")} readings.`,
    `Overall: avg ${formatValue(sum / total, h.unit)}, min ${formatValue(lo.min, h.unit)} ` +
    `(bucket ${lo.time.toISOString()}), max ${
      formatValue(hi.max, h.unit)
    } (bucket ${hi.time.toISOString()}).`,
    `query_id: ${queryId} (use with create_plot or analyze_data; columns time, avg, min, max, count). CSV: ${csvUrl}`,
  ];
  if (h.gaps.length > 0) {
    lines.push(
      `${h.gaps.length}${h.gaps.length >= 1000 ? "+" : ""} bucket(s) without readings ` +
        `(gaps, not drawn as lines), first ${h.gaps[0].toISOString()}.`,
    );
  }
  if (h.points.length <= TEXT_POINTS) {
    lines.push("", "time,avg,min,max,count");
    for (const p of h.points) {
      lines.push(
        `${p.time.toISOString()},${formatValue(p.avg)},${formatValue(p.min)},${
          formatValue(p.max)
        },${p.count}`,
      );
    }
  } else {
    lines.push(
      `(${h.points.length} points are too many to list here: they are in the structured result and the CSV.)`,
    );
  }
  return lines.join("\n");
}
