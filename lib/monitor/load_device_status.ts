import type { Queryable } from "../db/mod.ts";
import { loadActivity, loadAlertStates } from "./_store.ts";
import { deviceHealth } from "./device_health.ts";
import type { AlertEvent, DeviceHealth } from "./types.ts";

/** One device as `get_device_status` reports it. */
export interface DeviceStatus {
  deviceId: string;
  name: string | null;
  location: string | null;
  firmwareVersion: string | null;
  /** The status word the device last sent (`online`, `offline`, …), or null. */
  reportedStatus: string | null;
  /** online / silent / offline by the monitor's rule, as of `now`. */
  health: DeviceHealth;
  /** Newest activity of any kind. */
  lastSeen: Date | null;
  /** Seconds since `lastSeen`. */
  quietForS: number | null;
  /** The device's clock minus the collector's receive clock, in seconds (null: unknown). */
  clockOffsetS: number | null;
  /**
   * A data-quality finding: the device's clock is off by more than `CLOCK_TOLERANCE_S`, so its
   * readings carry wrong times (or, when ahead, the receive time instead). Activity is judged by
   * the receive clock, so this never makes the device silent.
   */
  clockSkewed: boolean;
  /** The monitor's saved state, or null when no check has seen the device yet. */
  alert: {
    state: DeviceHealth;
    since: Date;
    notifiedAt: Date | null;
    /** Kind of the notification still to be delivered, if any. */
    pending: AlertEvent["kind"] | null;
    lastError: string | null;
  } | null;
  /** Newest error reports, newest first. */
  recentErrors: { time: Date; message: string }[];
  /** Error reports in the 24 hours before `now`. */
  errorsLast24h: number;
}

/** Options of `loadDeviceStatus`. */
export interface LoadDeviceStatusOptions {
  now: Date;
  /** `INACTIVITY_THRESHOLD` in seconds. */
  thresholdS: number;
  /** Error reports listed per device (default 3). */
  errorsPerDevice?: number;
}

const ERROR_TEXT_MAX = 300;

/** A device clock further off than this is reported; the collector uses the same bound. */
export const CLOCK_TOLERANCE_S = 300;

/**
 * Every device with its health by the monitor's rule (`deviceHealth`, the same one the monitor
 * alerts on), its saved alert state and its latest errors from `device_events`.
 */
export async function loadDeviceStatus(
  db: Queryable,
  opts: LoadDeviceStatusOptions,
): Promise<DeviceStatus[]> {
  const devices = await loadActivity(db);
  const alerts = new Map((await loadAlertStates(db)).map((a) => [a.deviceId, a]));
  const perDevice = Math.max(0, Math.floor(opts.errorsPerDevice ?? 3));
  const dayAgo = new Date(opts.now.getTime() - 86_400_000);
  const errors = await db.sql<{ device_id: string; time: Date; payload: unknown }>`
    select d.device_id, e.time, e.payload
      from devices d
      cross join lateral (
        select time, payload from device_events
         where device_id = d.device_id and kind = 'error'
         order by time desc limit ${perDevice}) e
     order by d.device_id, e.time desc`;
  const counts = await db.sql<{ device_id: string; n: number }>`
    select device_id, count(*)::int as n from device_events
     where kind = 'error' and time > ${dayAgo} and time <= ${opts.now}
     group by device_id`;
  const countById = new Map(counts.map((c) => [c.device_id, Number(c.n)]));
  const errorsById = new Map<string, { time: Date; message: string }[]>();
  for (const e of errors) {
    const list = errorsById.get(e.device_id) ?? [];
    list.push({ time: new Date(e.time), message: errorText(e.payload) });
    errorsById.set(e.device_id, list);
  }
  return devices.map((d) => {
    const { health } = deviceHealth(d, opts);
    const a = alerts.get(d.deviceId);
    return {
      deviceId: d.deviceId,
      name: d.name,
      location: d.location,
      firmwareVersion: d.firmwareVersion,
      reportedStatus: d.status === "unknown" ? null : d.status,
      health,
      lastSeen: d.lastSeen,
      quietForS: d.lastSeen
        ? Math.max(0, Math.round((opts.now.getTime() - d.lastSeen.getTime()) / 1000))
        : null,
      clockOffsetS: d.clockOffsetS ?? null,
      clockSkewed: Math.abs(d.clockOffsetS ?? 0) > CLOCK_TOLERANCE_S,
      alert: a
        ? {
          state: a.state,
          since: a.since,
          notifiedAt: a.notifiedAt,
          pending: a.pending?.kind ?? null,
          lastError: a.lastError,
        }
        : null,
      recentErrors: errorsById.get(d.deviceId) ?? [],
      errorsLast24h: countById.get(d.deviceId) ?? 0,
    };
  });
}

/** The readable part of an error payload: a message field when there is one, else the JSON. */
function errorText(payload: unknown): string {
  let text: string;
  if (typeof payload === "string") text = payload;
  else if (payload && typeof payload === "object") {
    const o = payload as Record<string, unknown>;
    const field = ["message", "error", "msg", "description"].find((k) => typeof o[k] === "string");
    text = field ? String(o[field]) : JSON.stringify(payload);
  } else text = JSON.stringify(payload) ?? "";
  return text.length > ERROR_TEXT_MAX ? text.slice(0, ERROR_TEXT_MAX - 1) + "…" : text;
}
