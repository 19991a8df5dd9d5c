import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { compareAir, formatValue } from "../../readings/mod.ts";
import { AIR_ANNOTATIONS, airAnswer, isErrorResult, timeInput } from "./_air_args.ts";
import { describeSummary, summaryJson, summaryOutput } from "./get_air_summary.ts";

/** Input of `compare_air`. */
export const CompareAirInput = {
  location_a: z.string().max(200).optional().describe(
    'The first room (or placement), e.g. "bedroom". Give this or device_a.',
  ),
  device_a: z.string().max(200).optional().describe("The first device id or name."),
  location_b: z.string().max(200).optional().describe(
    "The second room; default: the first one (to compare two periods).",
  ),
  device_b: z.string().max(200).optional().describe("The second device; default: the first."),
  start_a: timeInput("Start of the first period", "-7d"),
  end_a: timeInput("End of the first period", "now"),
  start_b: timeInput("Start of the second period", "the first period's"),
  end_b: timeInput("End of the second period", "the first period's"),
};

/** Output of `compare_air`. */
export const CompareAirOutput = {
  a: summaryOutput,
  b: summaryOutput,
  differences: z.array(z.object({
    metric: z.string(),
    unit: z.string().nullable(),
    avg: z.number().describe("b − a"),
    min: z.number().describe("b − a"),
    max: z.number().describe("b − a"),
    minutes_outside: z.record(z.string(), z.number().int()).optional().describe(
      "b − a of the minutes above the CO2 thresholds or below/above the comfort band",
    ),
  })).describe("Metrics both sides have"),
};

type Args = {
  location_a?: string;
  device_a?: string;
  location_b?: string;
  device_b?: string;
  start_a?: string | number;
  end_a?: string | number;
  start_b?: string | number;
  end_b?: string | number;
};

/** Registers `compare_air`: two rooms over one period, or one room over two periods. */
export function registerCompareAirTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("compare_air", {
    title: "Compare air: two rooms or two periods",
    description:
      'Compares the air of two rooms over the same period ("bedroom vs office this week"), or of one room over two periods ("this week vs last week": give start_b/end_b), without SQL. ' +
      "Returns both summaries (as get_air_summary) and the differences b − a of average, min, max and minutes outside the comfortable range, with units. Default period: the last 7 days.",
    inputSchema: CompareAirInput,
    outputSchema: CompareAirOutput,
    annotations: AIR_ANNOTATIONS,
  }, async (args: Args) => {
    const result = await airAnswer(deps, ({ time, timeoutMs }) => {
      const startA = time("start_a", args.start_a, "-7d");
      const endA = time("end_a", args.end_a, "now");
      const sameB = args.location_b === undefined && args.device_b === undefined;
      return compareAir(
        deps.db,
        { location: args.location_a, device: args.device_a, start: startA, end: endA, timeoutMs },
        {
          location: sameB ? args.location_a : args.location_b,
          device: sameB ? args.device_a : args.device_b,
          start: args.start_b === undefined ? startA : time("start_b", args.start_b, ""),
          end: args.end_b === undefined ? endA : time("end_b", args.end_b, ""),
          timeoutMs,
        },
      );
    });
    if (isErrorResult(result)) return result;
    const nameA = args.location_a ?? args.device_a ?? "";
    const nameB = args.location_b ?? args.device_b ?? nameA;
    const lines = [
      ...describeSummary(`A: "${nameA}"`, result.a),
      ...describeSummary(`B: "${nameB}"`, result.b),
      "Differences (B − A):",
      ...result.differences.map((d) => {
        const f = (v: number) => `${v >= 0 ? "+" : ""}${formatValue(v, d.unit)}`;
        const out = d.minutesOutside
          ? `; minutes ${
            Object.entries(d.minutesOutside).map(([k, v]) => `${k} ${v >= 0 ? "+" : ""}${v}`)
              .join(", ")
          }`
          : "";
        return `- ${d.metric}: avg ${f(d.avg)}, min ${f(d.min)}, max ${f(d.max)}${out}`;
      }),
    ];
    return {
      content: [{ type: "text", text: lines.join("\n") }],
      structuredContent: {
        a: summaryJson(result.a),
        b: summaryJson(result.b),
        differences: result.differences.map((d) => ({
          metric: d.metric,
          unit: d.unit,
          avg: d.avg,
          min: d.min,
          max: d.max,
          ...(d.minutesOutside ? { minutes_outside: d.minutesOutside } : {}),
        })),
      },
    };
  });
}
