import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { dailyProfile, formatValue } from "../../readings/mod.ts";
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

/** Input of `get_daily_profile`. */
export const GetDailyProfileInput = {
  ...placeInput,
  metric: z.string().min(1).max(63).describe('e.g. "co2", "temperature", "humidity"'),
  start: timeInput("Start of the period (included)", "-30d"),
  end: timeInput("End of the period (excluded)", "now"),
  timezone: z.string().max(64).optional().describe(
    'IANA time zone of the hours of the day, e.g. "Europe/Berlin" (default UTC)',
  ),
};

/** Output of `get_daily_profile`. */
export const GetDailyProfileOutput = {
  metric: z.string(),
  unit: z.string().nullable(),
  sensor: sensorOutput,
  timezone: z.string(),
  period: z.object({ start: z.string(), end: z.string() }).describe(
    "ISO 8601 UTC, rounded out to whole hours",
  ),
  hours: z.array(z.object({
    hour: z.number().int().describe("0–23 in timezone"),
    avg: z.number(),
    min: z.number(),
    max: z.number(),
    readings: z.number().int(),
    days: z.number().int().describe("days of the period with readings in this hour"),
  })).describe("Hours without any reading are absent"),
};

type Args = PlacePeriodArgs & { metric: string; timezone?: string };

/** Registers `get_daily_profile`: the typical day of one metric in one room. */
export function registerGetDailyProfileTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("get_daily_profile", {
    title: "Typical day (hour-of-day averages)",
    description:
      'The typical day of one metric in one room: the average (with min, max and the days behind it) for each hour of the day over a period, e.g. "when is CO2 in the bedroom highest?". ' +
      "Exact, from the hour rollups, fast over any period. Default period: the last 30 days, hours in UTC unless timezone is given.",
    inputSchema: GetDailyProfileInput,
    outputSchema: GetDailyProfileOutput,
    annotations: AIR_ANNOTATIONS,
  }, async (args: Args) => {
    const p = await airAnswer(deps, (call) =>
      dailyProfile(deps.db, {
        ...call.placePeriod(args, "-30d"),
        metric: args.metric,
        timezone: args.timezone,
      }));
    if (isErrorResult(p)) return p;
    const lines = [
      `Typical day of ${p.metric}${p.unit ? ` [${p.unit}]` : ""} from ${sensorLabel(p.sensor)}, ` +
      `${p.start.toISOString()} → ${p.end.toISOString()}, hours in ${p.timezone}:`,
      ...(p.hours.length === 0
        ? ["(no readings in this period)"]
        : p.hours.map((h) =>
          `${String(h.hour).padStart(2, "0")}:00 avg ${formatValue(h.avg, p.unit)} (min ${
            formatValue(h.min, p.unit)
          }, max ${formatValue(h.max, p.unit)}, ${h.days} days)`
        )),
    ];
    return {
      content: [{ type: "text", text: lines.join("\n") }],
      structuredContent: {
        metric: p.metric,
        unit: p.unit,
        sensor: sensorJson(p.sensor),
        timezone: p.timezone,
        period: { start: p.start.toISOString(), end: p.end.toISOString() },
        hours: p.hours,
      },
    };
  });
}
