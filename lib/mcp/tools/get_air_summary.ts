import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { type AirSummary, airSummary, formatValue } from "../../readings/mod.ts";
import {
  AIR_ANNOTATIONS,
  airAnswer,
  isErrorResult,
  placeInput,
  type PlacePeriodArgs,
  sensorJson,
  sensorLabel,
  sensorOutput,
  timeInput,
} from "./_air_args.ts";

/** Input of `get_air_summary`. */
export const GetAirSummaryInput = {
  ...placeInput,
  start: timeInput("Start of the period (included)", "-24h"),
  end: timeInput("End of the period (excluded)", "now"),
};

const band = z.object({
  low: z.number(),
  high: z.number(),
  below_min: z.number().int(),
  within_min: z.number().int(),
  above_min: z.number().int(),
});

/** The structured part of an air summary (shared with `compare_air`). */
export const summaryOutput = z.object({
  period: z.object({
    start: z.string().describe("ISO 8601 UTC, rounded down to the minute"),
    end: z.string().describe("ISO 8601 UTC (excluded), rounded up to the minute"),
    minutes: z.number().int(),
  }),
  sensors: z.array(sensorOutput).describe("The sensors the figures come from"),
  metrics: z.array(z.object({
    metric: z.string(),
    unit: z.string().nullable(),
    sensor_id: z.number().int(),
    min: z.number(),
    avg: z.number(),
    max: z.number(),
    readings: z.number().int(),
    minutes_with_data: z.number().int(),
    minutes_above: z.record(z.string(), z.number().int()).optional().describe(
      "CO2: minutes whose average was above each threshold (ppm)",
    ),
    comfort: band.optional().describe(
      "Temperature (19–23 °C) and humidity (40–60 %RH): minutes below, within and above",
    ),
  })),
  dew_point: z.object({
    sensor_id: z.number().int(),
    unit: z.literal("°C"),
    min: z.number(),
    avg: z.number(),
    max: z.number(),
  }).nullable().describe("From hourly mean temperature and humidity of the same sensor"),
});

/** Structured output of one summary. */
export function summaryJson(s: AirSummary): z.infer<typeof summaryOutput> {
  return {
    period: { start: s.start.toISOString(), end: s.end.toISOString(), minutes: s.periodMinutes },
    sensors: s.sensors.map(sensorJson),
    metrics: s.metrics.map((m) => ({
      metric: m.metric,
      unit: m.unit,
      sensor_id: m.sensorId,
      min: m.min,
      avg: m.avg,
      max: m.max,
      readings: m.readings,
      minutes_with_data: m.minutes,
      ...(m.above ? { minutes_above: m.above } : {}),
      ...(m.band
        ? {
          comfort: {
            low: m.band.low,
            high: m.band.high,
            below_min: m.band.below,
            within_min: m.band.within,
            above_min: m.band.above,
          },
        }
        : {}),
    })),
    dew_point: s.dewPoint
      ? { sensor_id: s.dewPoint.sensorId, unit: "°C", ...pick(s.dewPoint) }
      : null,
  };
}

function pick(d: { min: number; avg: number; max: number }) {
  return { min: d.min, avg: d.avg, max: d.max };
}

/** The summary as text lines. */
export function describeSummary(title: string, s: AirSummary): string[] {
  const lines = [
    `${title}, ${s.start.toISOString()} → ${s.end.toISOString()} (${s.periodMinutes} min), from ${
      s.sensors.map(sensorLabel).join(", ") || "no sensor"
    }:`,
  ];
  if (s.metrics.length === 0) lines.push("- no readings in this period");
  for (const m of s.metrics) {
    const f = (v: number) => formatValue(v, m.unit);
    let line = `- ${m.metric} (sensor ${m.sensorId}): avg ${f(m.avg)}, min ${f(m.min)}, max ${
      f(m.max)
    }; ${m.readings} readings over ${m.minutes} min`;
    if (m.above) {
      line += `; above ${
        Object.entries(m.above).map(([k, v]) => `${k} ppm: ${v} min`).join(", above ")
      }`;
    }
    if (m.band) {
      line +=
        `; comfort ${m.band.low}–${m.band.high}${m.unit ? ` ${m.unit}` : ""}: ${m.band.below}` +
        ` min below, ${m.band.within} within, ${m.band.above} above`;
    }
    lines.push(line);
  }
  if (s.dewPoint) {
    lines.push(
      `- dew point (sensor ${s.dewPoint.sensorId}): avg ${formatValue(s.dewPoint.avg, "°C")}, ` +
        `min ${formatValue(s.dewPoint.min, "°C")}, max ${formatValue(s.dewPoint.max, "°C")}`,
    );
  }
  return lines;
}

/** Registers `get_air_summary`: the air in one room over one period, without SQL. */
export function registerGetAirSummaryTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("get_air_summary", {
    title: "Air summary of a room",
    description:
      'How the air was in one room over a period, without SQL: e.g. "how was the bedroom air this week?". ' +
      "For every metric min/avg/max with units, the minutes CO2 spent above 1000 and 1400 ppm, the minutes temperature spent below/within/above 19–23 °C and humidity 40–60 %RH, and the dew point; names the period and the sensors used. " +
      "Exact and fast over any period (computed from the minute and hour rollups; a minute counts by its average). Default period: the last 24 hours.",
    inputSchema: GetAirSummaryInput,
    outputSchema: { summary: summaryOutput },
    annotations: AIR_ANNOTATIONS,
  }, async (args: PlacePeriodArgs) => {
    const result = await airAnswer(
      deps,
      (call) => airSummary(deps.db, call.placePeriod(args, "-24h")),
    );
    if (isErrorResult(result)) return result;
    const where = args.location ?? args.device ?? "";
    return {
      content: [{ type: "text", text: describeSummary(`Air in "${where}"`, result).join("\n") }],
      structuredContent: { summary: summaryJson(result) },
    };
  });
}
