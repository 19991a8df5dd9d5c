import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { dataQuality, formatValue, QUALITY_LIMITS } from "../../readings/mod.ts";
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

/** Input of `check_data_quality`. */
export const CheckDataQualityInput = {
  location: placeInput.location.describe(
    'Only this room or placement, e.g. "bedroom" (default: every sensor)',
  ),
  device: placeInput.device,
  start: timeInput("Start of the period (included)", "-7d"),
  end: timeInput("End of the period (excluded)", "now"),
  gap_minutes: z.number().int().min(2).max(100_000).optional().describe(
    "No reading for at least this many minutes is a gap (default 10)",
  ),
};

/** Output of `check_data_quality`. */
export const CheckDataQualityOutput = {
  period: z.object({ start: z.string(), end: z.string() }),
  sensors: z.array(sensorOutput),
  gaps: z.array(z.object({
    sensor_id: z.number().int(),
    from: z.string(),
    to: z.string(),
    minutes: z.number().int(),
  })),
  stuck: z.array(z.object({
    sensor_id: z.number().int(),
    metric: z.string(),
    value: z.number(),
    from: z.string(),
    to: z.string(),
    hours: z.number().int(),
  })).describe("The same value in every reading for 2 or more whole hours"),
  jumps: z.array(z.object({
    sensor_id: z.number().int(),
    metric: z.string(),
    time: z.string(),
    from: z.number(),
    to: z.number(),
  })).describe(
    "A minute's average differing from the minute before by more than co2 500 ppm, temperature 2 °C, humidity 15 %RH, pressure 3 hPa",
  ),
  implausible: z.array(z.object({
    sensor_id: z.number().int(),
    metric: z.string(),
    hour: z.string(),
    min: z.number(),
    max: z.number(),
  })).describe("Hours with readings outside the physically plausible range"),
  clocks: z.array(z.object({
    device_id: z.string(),
    sensor_id: z.number().int(),
    newest: z.string(),
    ahead_s: z.number().int(),
  })).describe("Sensors whose newest reading lies in the future: the device clock runs ahead"),
};

type Args = PlacePeriodArgs & { gap_minutes?: number };

const iso = (d: Date) => d.toISOString();

/** Registers `check_data_quality`: gaps, stuck values, jumps, implausible values, clocks. */
export function registerCheckDataQualityTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("check_data_quality", {
    title: "Data-quality findings",
    description:
      "Checks the readings of one room (or every sensor) over a period for gaps (a device that was off), stuck values, implausible jumps, readings outside the plausible range and device clocks running ahead. " +
      "Use it before trusting an analysis, or when asked whether a sensor works. Fast over any period (from the rollups). Default period: the last 7 days.",
    inputSchema: CheckDataQualityInput,
    outputSchema: CheckDataQualityOutput,
    annotations: AIR_ANNOTATIONS,
  }, async (args: Args) => {
    const q = await airAnswer(deps, (call) =>
      dataQuality(deps.db, {
        ...call.placePeriod(args, "-7d"),
        gapMinutes: args.gap_minutes,
        now: call.now,
      }));
    if (isErrorResult(q)) return q;
    const unit = (sensorId: number, metric: string) => q.units.get(`${sensorId}/${metric}`) ?? null;
    const lines = [
      `Data quality ${iso(q.start)} → ${iso(q.end)} of ${
        q.sensors.map(sensorLabel).join(", ") || "no sensor"
      }:`,
      `- gaps of ${q.gapMinutes}+ min: ${q.gaps.length === 0 ? "none" : ""}`,
      ...q.gaps.map((g) =>
        `  sensor ${g.sensorId}: ${iso(g.from)} → ${iso(g.to)} (${g.minutes} min)`
      ),
      `- stuck values (${q.stuckHours}+ h unchanged): ${q.stuck.length === 0 ? "none" : ""}`,
      ...q.stuck.map((s) =>
        `  sensor ${s.sensorId} ${s.metric} = ${formatValue(s.value, unit(s.sensorId, s.metric))} ${
          iso(s.from)
        } → ${iso(s.to)} (${s.hours} h)`
      ),
      `- implausible jumps: ${q.jumps.length === 0 ? "none" : ""}`,
      ...q.jumps.map((j) =>
        `  sensor ${j.sensorId} ${j.metric} ${formatValue(j.from, unit(j.sensorId, j.metric))} → ${
          formatValue(j.to, unit(j.sensorId, j.metric))
        } at ${iso(j.time)}`
      ),
      `- readings outside the plausible range: ${q.implausible.length === 0 ? "none" : ""}`,
      ...q.implausible.map((i) =>
        `  sensor ${i.sensorId} ${i.metric} min ${
          formatValue(i.min, unit(i.sensorId, i.metric))
        }, max ${formatValue(i.max, unit(i.sensorId, i.metric))} in the hour from ${iso(i.hour)}`
      ),
      `- clocks running ahead: ${q.clocks.length === 0 ? "none" : ""}`,
      ...q.clocks.map((c) =>
        `  ${c.deviceId} (sensor ${c.sensorId}): newest reading ${
          iso(c.newest)
        }, ${c.aheadS} s ahead`
      ),
      `Limits: ${
        Object.entries(QUALITY_LIMITS).map(([m, l]) =>
          `${m} ${l.low}–${l.high}, jump ${l.jump}/min`
        ).join("; ")
      }.`,
    ];
    return {
      content: [{ type: "text", text: lines.join("\n") }],
      structuredContent: {
        period: { start: iso(q.start), end: iso(q.end) },
        sensors: q.sensors.map(sensorJson),
        gaps: q.gaps.map((g) => ({
          sensor_id: g.sensorId,
          from: iso(g.from),
          to: iso(g.to),
          minutes: g.minutes,
        })),
        stuck: q.stuck.map((s) => ({
          sensor_id: s.sensorId,
          metric: s.metric,
          value: s.value,
          from: iso(s.from),
          to: iso(s.to),
          hours: s.hours,
        })),
        jumps: q.jumps.map((j) => ({
          sensor_id: j.sensorId,
          metric: j.metric,
          time: iso(j.time),
          from: j.from,
          to: j.to,
        })),
        implausible: q.implausible.map((i) => ({
          sensor_id: i.sensorId,
          metric: i.metric,
          hour: iso(i.hour),
          min: i.min,
          max: i.max,
        })),
        clocks: q.clocks.map((c) => ({
          device_id: c.deviceId,
          sensor_id: c.sensorId,
          newest: iso(c.newest),
          ahead_s: c.aheadS,
        })),
      },
    };
  });
}
