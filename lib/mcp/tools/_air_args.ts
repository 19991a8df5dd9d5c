import { z } from "zod";
import { QueryTimeout } from "../../db/mod.ts";
import { parseTime, ReadingsError, type SensorInfo } from "../../readings/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { type ErrorResult, errorResult } from "./_error_result.ts";

/** A time argument of the air tools. */
export const timeInput = (what: string, fallback: string) =>
  z.union([z.string().max(100), z.number()]).optional().describe(
    `${what} (default ${fallback}). ISO 8601 ("2024-01-15", "2024-01-15T08:30:00+01:00"; no zone = UTC), relative ("-24h", "7d" = 7 days ago, "-2w"), "now", or unix seconds.`,
  );

/** The place arguments of the air tools. */
export const placeInput = {
  location: z.string().max(200).optional().describe(
    'A room, e.g. "bedroom" (every sensor of the board there), or where a sensor sits, e.g. "wardrobe shelf"; case, spaces and _ do not matter. Give this or device.',
  ),
  device: z.string().max(200).optional().describe("A device id or name, instead of location."),
};

/** A sensor as the air tools name it in their answers. */
export const sensorOutput = z.object({
  sensor_id: z.number().int(),
  sensor_type: z.string(),
  device_id: z.string(),
  device_name: z.string().nullable(),
  room: z.string().nullable(),
  placement: z.string().nullable(),
});

/** `sensorOutput` of a sensor. */
export function sensorJson(s: SensorInfo): z.infer<typeof sensorOutput> {
  return {
    sensor_id: s.sensorId,
    sensor_type: s.sensorType,
    device_id: s.deviceId,
    device_name: s.deviceName,
    room: s.room,
    placement: s.placement,
  };
}

/** "sensor 1 (scd30 on bedroom-1, bedside table)". */
export function sensorLabel(s: SensorInfo): string {
  const where = s.placement ?? s.room;
  return `sensor ${s.sensorId} (${s.sensorType} on ${s.deviceId}${where ? `, ${where}` : ""})`;
}

/** Parses a time argument, turning a bad one into a ReadingsError naming the argument. */
export function timeArg(name: string, value: string | number, now: Date): Date {
  try {
    return parseTime(value, now);
  } catch (error) {
    if (error instanceof RangeError) {
      throw new ReadingsError(`${name}: ${error.message}`, [], { cause: error });
    }
    throw error;
  }
}

/** Runs `fn`; a ReadingsError or a timeout becomes an error result the assistant can act on. */
export async function answer<T>(deps: ToolDeps, fn: () => Promise<T>): Promise<T | ErrorResult> {
  try {
    return await fn();
  } catch (error) {
    if (error instanceof ReadingsError) return errorResult(error.message);
    if (error instanceof QueryTimeout) {
      return errorResult(
        `The answer took longer than ${deps.config.query.timeoutS} s (QUERY_TIMEOUT_S). ` +
          "Ask for a shorter period.",
      );
    }
    throw error;
  }
}

/** Whether `x` is an error result made by `answer`. */
export function isErrorResult(x: unknown): x is ErrorResult {
  return typeof x === "object" && x !== null && (x as { isError?: unknown }).isError === true;
}

/** Annotations of every air tool: reads only, the same answer for the same data. */
export const AIR_ANNOTATIONS = {
  readOnlyHint: true,
  openWorldHint: false,
  idempotentHint: true,
} as const;

/** The place and period arguments most air tools take. */
export interface PlacePeriodArgs {
  location?: string;
  device?: string;
  start?: string | number;
  end?: string | number;
}

/** What the handler of every air tool shares (see `airAnswer`). */
export interface AirCall {
  /** The one "now" every relative time of the call is read against. */
  now: Date;
  /** QUERY_TIMEOUT_S in milliseconds. */
  timeoutMs: number;
  /** A time argument (see `timeArg`), `fallback` when absent. */
  time(name: string, value: string | number | undefined, fallback: string): Date;
  /** location, device, start (default `defaultStart`), end (default now) and the timeout. */
  placePeriod(args: PlacePeriodArgs, defaultStart: string): {
    location?: string;
    device?: string;
    start: Date;
    end: Date;
    timeoutMs: number;
  };
}

/**
 * Runs the readings function of an air tool with its arguments read as `AirCall` gives them; a
 * bad argument, a ReadingsError or a timeout becomes an error result (see `answer`).
 */
export function airAnswer<T>(
  deps: ToolDeps,
  fn: (call: AirCall) => Promise<T>,
): Promise<T | ErrorResult> {
  const now = new Date();
  const timeoutMs = deps.config.query.timeoutS * 1000;
  const time = (name: string, value: string | number | undefined, fallback: string) =>
    timeArg(name, value ?? fallback, now);
  return answer(deps, () =>
    fn({
      now,
      timeoutMs,
      time,
      placePeriod: (args, defaultStart) => ({
        location: args.location,
        device: args.device,
        start: time("start", args.start, defaultStart),
        end: time("end", args.end, "now"),
        timeoutMs,
      }),
    }));
}
