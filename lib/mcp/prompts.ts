import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { completable } from "@modelcontextprotocol/sdk/server/completable.js";
import { z } from "zod";
import type { ToolDeps } from "./deps.ts";
import { loadCatalog, placeKey, sensorMetrics } from "../readings/mod.ts";

/** Comfort and health guide values an assistant should apply to indoor readings. */
export const THRESHOLDS = [
  "CO2: below 800 ppm fresh; 800–1000 ppm acceptable; above 1000 ppm stuffy (ventilate); " +
  "above 1400 ppm poor (tiredness, headaches, poor concentration); above 2000 ppm very poor.",
  "Humidity: 40–60 %RH comfortable; below 30 %RH too dry (irritated eyes and airways); above " +
  "60 %RH for long periods risks mould, above 70 %RH act.",
  "Temperature: 19–23 °C comfortable for living rooms and offices, 16–19 °C good for sleeping; " +
  "note swings of more than 3 °C within an hour.",
  "Pressure (hPa) is weather, not air quality: a fall of more than 3 hPa in 3 hours means a " +
  "change in weather.",
].map((t) => `- ${t}`).join("\n");

const PERIOD_HELP =
  'ISO 8601 ("2024-01-15") or relative ("-24h", "7d" = 7 days ago, "-2w"); the period runs from it until now';

/**
 * Registers the MCP prompts: `air_quality_report` (one room over a period), `find_anomalies`
 * (one metric over a period) and `compare_rooms` (two rooms, one metric, one period). Each
 * produces a user message that walks the assistant through the tools in order and says what to
 * check.
 */
export function registerPrompts(server: McpServer, deps: ToolDeps): void {
  // Rooms and placements, from the catalog every readings answer uses: "bed" offers "bedroom"
  // as well as "bedside table"; "living room" finds "living_room".
  const locations = async (value: string | undefined) => {
    const { sensors } = await loadCatalog(deps.db);
    const want = placeKey(value);
    const names = [...new Set(sensors.flatMap((s) => [s.room, s.placement]))]
      .filter((n): n is string => !!n).sort();
    return names.filter((n) => placeKey(n).includes(want)).slice(0, 100);
  };
  const metrics = async (value: string | undefined) => {
    const catalog = await loadCatalog(deps.db);
    const names = [...new Set(catalog.sensors.flatMap((s) => sensorMetrics(catalog, s)))].sort();
    return names.filter((m) => m.startsWith((value ?? "").trim().toLowerCase())).slice(0, 100);
  };
  const location = (what: string) =>
    completable(z.string().min(1).max(200).describe(what), locations);
  const period = z.string().max(100).optional().describe(`Start of the period: ${PERIOD_HELP}`);

  server.registerPrompt("air_quality_report", {
    title: "Air-quality report for a room",
    description:
      "A report on CO2, temperature and humidity in one room over a period, with a verdict and advice.",
    argsSchema: {
      location: location('The room or location, e.g. "Bedroom" (as in get_latest_readings)'),
      period: period,
    },
  }, ({ location, period }: { location: string; period?: string }) => {
    const start = period?.trim() || "-24h";
    return message(`Write an air-quality report for "${location}" from ${start} until now.

Steps:
1. Call get_latest_readings with location "${location}" to see the current values and find the sensors there (sensor_id, sensor_type, metrics). If the location is unknown, the error lists the known ones: pick the closest and say so. If the newest reading is more than 10 minutes old, the device may be silent — say so (get_device_status tells more).
2. Call get_air_summary with location "${location}" and start "${start}": min/avg/max of every metric, the minutes CO2 spent above 1000 and 1400 ppm, the minutes below/within/above the comfort bands (19–23 °C, 40–60 %RH) and the dew point, with units and the sensors used. Call get_daily_profile for co2 (and the user's time zone if known) to see when in the day it peaks. For a curve, call get_sensor_history for co2 with the sensor_id the summary names.
3. Judge each metric against these guide values:
${THRESHOLDS}
   Use the summary's minute counts for how long each limit was exceeded.
4. Optionally call create_plot with the query_id of the CO2 history to show the curve, marking 1000 and 1400 ppm.
5. Report: a one-line verdict (good / fair / poor), a small table (metric, now, average, min, max, time outside the comfortable range), the worst moments with their times, patterns (e.g. CO2 rising every night with the door closed) and concrete advice (ventilate when, for how long; humidify or dehumidify). Give units and times in the user's terms, and say which data was missing.`);
  });

  server.registerPrompt("find_anomalies", {
    title: "Find anomalies in a metric",
    description:
      "Looks for spikes, stuck values, gaps and implausible readings of one metric across the sensors over a period.",
    argsSchema: {
      metric: completable(
        z.string().min(1).max(63).describe('The metric, e.g. "co2", "temperature", "humidity"'),
        metrics,
      ),
      period: period,
      location: completable(
        z.string().max(200).optional().describe("Only this room or location (default: all)"),
        locations,
      ),
    },
  }, ({ metric, period, location }: { metric: string; period?: string; location?: string }) => {
    const start = period?.trim() || "7d";
    const where = location?.trim() ? ` at "${location.trim()}"` : " on every sensor";
    return message(`Find anomalies in ${metric}${where} from ${start} until now.

Steps:
1. Call get_latest_readings${
      location?.trim() ? ` with location "${location.trim()}"` : ""
    } to list the sensors that report ${metric} (and their units). An unknown location or metric is answered with the valid choices.
2. Call check_data_quality${
      location?.trim() ? ` with location "${location.trim()}"` : ""
    } and start "${start}": gaps, stuck values, implausible jumps and readings, and clocks running ahead, found in the rollups. Then, for each sensor reporting ${metric}, call get_sensor_history with metric "${metric}", start "${start}", end "now" and max_points 1000 to look closer.
3. In each history look for:
   - spikes: a bucket max far above its avg, or an avg more than 3 standard deviations from the period's mean;
   - stuck sensor: min = max over many consecutive buckets;
   - gaps: missing buckets or buckets with a much lower count than the others (the device was silent or restarted — check get_device_status);
   - implausible values: CO2 below 350 or above 10000 ppm, humidity outside 0–100 %RH, indoor temperature below 0 or above 50 °C, pressure outside 900–1100 hPa;
   - sudden steps that stay (sensor moved, recalibrated, or a window opened).
   For a closer look, run analyze_data on the history's query_id (e.g. rolling median and z-scores with pandas), or execute_sql_query for the raw readings around a suspicious time.
4. For context, these are the usual ranges indoors:
${THRESHOLDS}
5. Report each anomaly with sensor, time (UTC and the user's time if known), value with unit, what kind it is and its likely cause; then say what looked normal. If nothing stands out, say so plainly. Show one plot (create_plot) of the most interesting sensor if it helps.`);
  });

  server.registerPrompt("compare_rooms", {
    title: "Compare two rooms",
    description: "Compares one metric between two rooms or locations over the same period.",
    argsSchema: {
      location_a: location("The first room or location"),
      location_b: location("The second room or location"),
      metric: completable(
        z.string().max(63).optional().describe('The metric to compare (default "co2")'),
        metrics,
      ),
      period: period,
    },
  }, (
    { location_a, location_b, metric, period }: {
      location_a: string;
      location_b: string;
      metric?: string;
      period?: string;
    },
  ) => {
    const m = metric?.trim() || "co2";
    const start = period?.trim() || "7d";
    return message(
      `Compare ${m} between "${location_a}" and "${location_b}" from ${start} until now.

Steps:
1. Call get_latest_readings with location "${location_a}" and again with "${location_b}" to find each room's sensor_id that reports ${m}, and the current values. Unknown locations are answered with the known ones.
2. Call compare_air with location_a "${location_a}", location_b "${location_b}" and start "${start}": both summaries and the differences (b − a) of average, min, max and minutes outside the comfortable range. Call get_daily_profile for ${m} in each room to compare when in the day they peak.
3. Compare: average, min, max, how long each room spent outside the comfortable range, when in the day each room peaks, and how fast values recover (e.g. after airing). Guide values:
${THRESHOLDS}
4. For one chart with both rooms, run execute_sql_query joining both sensors on a common date_bin bucket (one column per room), then create_plot on its query_id; or plot each history's query_id separately.
5. Report which room is better and by how much (with units), the times when they differ most, likely reasons (occupancy, ventilation, heating) and one or two practical suggestions. Mention gaps or stale readings that limit the comparison.`,
    );
  });
}

function message(text: string) {
  return { messages: [{ role: "user" as const, content: { type: "text" as const, text } }] };
}
