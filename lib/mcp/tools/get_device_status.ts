import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import { type DeviceStatus, loadDeviceStatus } from "../../monitor/mod.ts";
import { formatAge } from "../../readings/mod.ts";
import type { ToolDeps } from "../deps.ts";
import { databaseErrorResult, errorResult } from "./_error_result.ts";
import { DEVICE_TEXT_NOTE, deviceField, quoteDevice } from "./_device_text.ts";
import { capNote, LIST_CAP } from "./_cap_list.ts";
import { DEVICE_TEXT_MAX } from "../../ingest/device_text.ts";

/** Input of `get_device_status`. */
export const GetDeviceStatusInput = {
  device: z.string().trim().min(1).max(200).optional().describe(
    "Only this device: its device_id or its name (case-insensitive). Omit to get every device.",
  ),
};

const Health = z.enum(["online", "silent", "offline"]);

const Device = z.object({
  device_id: z.string(),
  name: z.string().nullable(),
  location: z.string().nullable(),
  firmware_version: z.string().nullable(),
  health: Health.describe(
    "offline: the device said so (e.g. its MQTT last will); silent: nothing received for longer " +
      "than inactivity_threshold_s; online otherwise",
  ),
  reported_status: z.string().nullable().describe("The status word the device last sent"),
  last_seen: z.string().nullable().describe(
    "When the collector last received a message of any kind, by its own clock, ISO 8601 UTC",
  ),
  quiet_for_s: z.number().nullable().describe("Seconds since last_seen"),
  clock_offset_s: z.number().nullable().describe(
    "The device's clock minus the collector's, in seconds, from its newest reading (null: unknown)",
  ),
  clock_skewed: z.boolean().describe(
    "Data quality: the device clock is off by more than 300 s, so its readings carry wrong " +
      "times; health is judged by the collector's receive time and is not affected",
  ),
  alert: z.object({
    state: Health.describe("What the monitor last recorded"),
    since: z.string().describe("When that state began (for outages: the last activity)"),
    notified_at: z.string().nullable().describe("When the last notification was delivered"),
    pending: z.enum(["silent", "offline", "back"]).nullable().describe(
      "A notification not yet delivered",
    ),
    last_error: z.string().nullable().describe("Why the last delivery failed"),
  }).nullable().describe("The monitor's alert state; null before its first check of the device"),
  recent_errors: z.array(z.object({ time: z.string(), message: z.string() })).describe(
    "Newest error reports of the device, newest first",
  ),
  errors_last_24h: z.number(),
});

/** Structured output of `get_device_status`. */
export const GetDeviceStatusOutput = {
  checked_at: z.string().describe("Time of this answer, ISO 8601 UTC"),
  inactivity_threshold_s: z.number().describe(
    "Seconds without data after which a device is silent",
  ),
  devices: z.array(Device),
};

type DeviceOut = z.infer<typeof Device>;

/** Registers `get_device_status`: health, last seen, alert state and errors of every device. */
export function registerGetDeviceStatusTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("get_device_status", {
    title: "Device status",
    description:
      "Which devices are online, silent or offline right now, with last seen time, firmware, " +
      "location, the monitor's alert state (notified or pending) and the latest errors each " +
      "device reported. Use it for questions like 'which sensors are offline?' or 'is the " +
      "bedroom sensor working?' instead of writing SQL. A device is silent after " +
      "INACTIVITY_THRESHOLD seconds without any message (inactivity_threshold_s in the result).",
    inputSchema: GetDeviceStatusInput,
    outputSchema: GetDeviceStatusOutput,
    annotations: { readOnlyHint: true, idempotentHint: false, openWorldHint: false },
  }, async ({ device }: { device?: string }) => {
    const now = new Date();
    const thresholdS = deps.config.monitor.inactivityThresholdS;
    let all: DeviceStatus[];
    try {
      all = await loadDeviceStatus(deps.db, { now, thresholdS });
    } catch (error) {
      return databaseErrorResult("get_device_status", "read device status", error);
    }
    let devices = all;
    if (device !== undefined) {
      const want = device.toLowerCase();
      devices = all.filter((d) =>
        d.deviceId.toLowerCase() === want || d.name?.toLowerCase() === want
      );
      if (devices.length === 0) {
        const known = all.slice(0, 30).map((d) => d.deviceId).join(", ");
        return errorResult(
          `No device has the id or name "${device}". ` +
            (all.length
              ? `Known devices: ${known}${all.length > 30 ? ", …" : ""}.`
              : "No device has reported yet."),
        );
      }
    }
    // At most LIST_CAP devices; silent and offline ones first, so no outage is cut off.
    const total = devices.length;
    if (total > LIST_CAP) {
      const rank = (d: DeviceStatus) => d.health === "online" ? 1 : 0;
      devices = [...devices].sort((a, b) => rank(a) - rank(b)).slice(0, LIST_CAP);
    }
    const out = devices.map(toOutput);
    let text = formatStatus(out, thresholdS);
    if (total > out.length) {
      const n = (h: string) => all.filter((d) => d.health === h).length;
      text += "\n" + capNote({
        shown: out.length,
        total,
        noun: `devices (all: ${n("online")} online, ${n("silent")} silent, ${
          n("offline")
        } offline; silent and offline listed first)`,
        hint: "pass device (its id or name) for one device",
      });
    }
    return {
      structuredContent: {
        checked_at: now.toISOString(),
        inactivity_threshold_s: thresholdS,
        devices: out,
      },
      content: [{ type: "text", text }],
    };
  });
}

function toOutput(d: DeviceStatus): DeviceOut {
  return {
    device_id: d.deviceId,
    name: deviceField(d.name),
    location: deviceField(d.location),
    firmware_version: deviceField(d.firmwareVersion, DEVICE_TEXT_MAX.firmware),
    health: d.health,
    reported_status: deviceField(d.reportedStatus, DEVICE_TEXT_MAX.firmware),
    last_seen: d.lastSeen?.toISOString() ?? null,
    quiet_for_s: d.quietForS,
    clock_offset_s: d.clockOffsetS === null ? null : Math.round(d.clockOffsetS * 10) / 10,
    clock_skewed: d.clockSkewed,
    alert: d.alert
      ? {
        state: d.alert.state,
        since: d.alert.since.toISOString(),
        notified_at: d.alert.notifiedAt?.toISOString() ?? null,
        pending: d.alert.pending,
        last_error: d.alert.lastError,
      }
      : null,
    recent_errors: d.recentErrors.map((e) => ({
      time: e.time.toISOString(),
      message: deviceField(e.message, DEVICE_TEXT_MAX.error) ?? "",
    })),
    errors_last_24h: d.errorsLast24h,
  };
}

function formatStatus(devices: DeviceOut[], thresholdS: number): string {
  if (devices.length === 0) {
    return "No devices yet. Devices register when they publish over MQTT (try `deno task simulate`).";
  }
  const count = (h: string) => devices.filter((d) => d.health === h).length;
  const lines = [
    `${devices.length} device(s): ${count("online")} online, ${count("silent")} silent, ` +
    `${count("offline")} offline (silent = nothing received for over ${thresholdS} s; ` +
    `${DEVICE_TEXT_NOTE}).`,
  ];
  for (const d of devices) {
    const name = d.name && d.name !== d.device_id ? ` named ${quoteDevice(d.name)}` : "";
    const where = d.location ? ` in ${quoteDevice(d.location)}` : "";
    const seen = d.last_seen
      ? `last seen ${d.last_seen} (${formatAge(d.quiet_for_s ?? 0)})`
      : "never seen";
    const fw = d.firmware_version ? `, firmware ${quoteDevice(d.firmware_version)}` : "";
    lines.push(`- ${d.device_id}${name}${where}: ${d.health.toUpperCase()}, ${seen}${fw}`);
    if (d.clock_skewed && d.clock_offset_s !== null) {
      const off = Math.abs(d.clock_offset_s);
      lines.push(
        `  data quality: the device clock runs ${formatAge(off).replace(/ ago$/, "")} ` +
          `${d.clock_offset_s > 0 ? "ahead" : "behind"}; its readings carry ` +
          (d.clock_offset_s > 0 ? "the receive time instead" : "times that far in the past"),
      );
    }
    if (d.alert && d.alert.state !== "online") {
      const a = d.alert;
      const told = a.pending
        ? `alert pending${a.last_error ? ` (last attempt failed: ${a.last_error})` : ""}`
        : a.notified_at && a.notified_at >= a.since
        ? `alert sent ${a.notified_at}`
        : a.last_error
        ? `alert not delivered: ${a.last_error}`
        : "no alert sent for this outage";
      lines.push(`  monitor: ${a.state} since ${a.since}, ${told}`);
    }
    if (d.recent_errors.length > 0) {
      lines.push(`  errors (${d.errors_last_24h} in the last 24 h), newest first:`);
      for (const e of d.recent_errors) lines.push(`    ${e.time}: ${quoteDevice(e.message, 300)}`);
    }
  }
  return lines.join("\n");
}
