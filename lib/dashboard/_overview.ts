import type { Db } from "../db/mod.ts";
import { loadDeviceStatus } from "../monitor/mod.ts";
import { latestReadings } from "../readings/mod.ts";

/** What `loadOverview` needs besides the database. */
export interface OverviewOptions {
  now: Date;
  /** INACTIVITY_THRESHOLD in seconds: the monitor's online/silent rule. */
  thresholdS: number;
  /** The embedded collector's counters, when it runs in this process. */
  collector?: () => Record<string, unknown> | undefined;
}

/** Events older than this are not listed. */
const EVENT_WINDOW_MS = 7 * 86_400_000;
const EVENT_LIMIT = 30;
const TEXT_MAX = 200;

interface Reading {
  metric: string;
  value: number;
  unit: string | null;
  time: string;
  age_s: number;
}

/** One entry of the "recent alerts and recoveries" list. */
interface OverviewEvent {
  time: string;
  device_id: string;
  /** silent / offline / online (the monitor's state changes), status or error (device messages). */
  kind: string;
  text: string;
}

/**
 * Everything the dashboard's main view shows, as JSON: devices with their health (the monitor's
 * rule), firmware and latest values per sensor; recent alerts, recoveries and device messages;
 * the collector's counters. Built from `loadDeviceStatus` and `latestReadings`.
 */
export async function loadOverview(db: Db, opts: OverviewOptions) {
  const { now } = opts;
  const since = new Date(now.getTime() - EVENT_WINDOW_MS);
  const [devices, latest, messages] = await Promise.all([
    loadDeviceStatus(db, { now, thresholdS: opts.thresholdS, errorsPerDevice: 1 }),
    latestReadings(db, { now }),
    db.sql<{ time: Date; device_id: string; kind: string; payload: unknown }>`
      select time, device_id, kind, payload from device_events
       where kind in ('status', 'error') and time > ${since} and time <= ${now}
       order by time desc limit ${EVENT_LIMIT}`,
  ]);
  const readingsBySensor = new Map<number, Reading[]>();
  for (const r of latest.readings) {
    const list = readingsBySensor.get(r.sensorId) ?? [];
    list.push({
      metric: r.metric,
      value: r.value,
      unit: r.unit,
      time: r.time.toISOString(),
      age_s: r.ageS,
    });
    readingsBySensor.set(r.sensorId, list);
  }
  const events: OverviewEvent[] = [];
  for (const d of devices) {
    if (!d.alert || d.alert.since.getTime() < since.getTime()) continue;
    // The monitor's first sight of a device (online, nothing sent or owed) is no recovery.
    if (d.alert.state === "online" && !d.alert.notifiedAt && !d.alert.pending) continue;
    const label = d.name ?? d.deviceId;
    const text = d.alert.state === "online"
      ? `${label} is back online`
      : d.alert.state === "silent"
      ? `${label} went silent`
      : `${label} went offline`;
    events.push({
      time: d.alert.since.toISOString(),
      device_id: d.deviceId,
      kind: d.alert.state,
      text,
    });
  }
  for (const m of messages) {
    events.push({
      time: new Date(m.time).toISOString(),
      device_id: m.device_id,
      kind: m.kind,
      text: clip(payloadText(m.payload)),
    });
  }
  events.sort((a, b) => b.time.localeCompare(a.time));
  return {
    now: now.toISOString(),
    threshold_s: opts.thresholdS,
    devices: devices.map((d) => ({
      device_id: d.deviceId,
      name: d.name,
      location: d.location,
      firmware: d.firmwareVersion,
      health: d.health,
      reported_status: d.reportedStatus,
      last_seen: d.lastSeen?.toISOString() ?? null,
      quiet_for_s: d.quietForS,
      errors_24h: d.errorsLast24h,
      last_error: d.recentErrors[0]
        ? { time: d.recentErrors[0].time.toISOString(), message: d.recentErrors[0].message }
        : null,
      sensors: latest.sensors.filter((s) => s.deviceId === d.deviceId).map((s) => ({
        sensor_id: s.sensorId,
        sensor_type: s.sensorType,
        location: s.location,
        readings: readingsBySensor.get(s.sensorId) ?? [],
      })),
    })),
    events: events.slice(0, EVENT_LIMIT),
    collector: opts.collector?.() ?? null,
  };
}

function clip(text: string): string {
  return text.length > TEXT_MAX ? text.slice(0, TEXT_MAX - 1) + "…" : text;
}

function payloadText(payload: unknown): string {
  if (typeof payload === "string") return payload;
  if (payload && typeof payload === "object") {
    const o = payload as Record<string, unknown>;
    for (const k of ["message", "error", "status", "msg", "description"]) {
      if (typeof o[k] === "string") return o[k] as string;
    }
  }
  return JSON.stringify(payload) ?? "";
}
