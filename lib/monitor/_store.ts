// The monitor's reads and writes: device activity in, `device_alerts` state in and out.
import type { Queryable } from "../db/mod.ts";
import type { AlertEvent, AlertState, DeviceActivity, DeviceHealth } from "./types.ts";

/** A device's activity plus the descriptive fields status reports show. */
export interface DeviceRow extends DeviceActivity {
  firmwareVersion: string | null;
}

interface ActivityRecord {
  device_id: string;
  device_name: string | null;
  location: string | null;
  firmware_version: string | null;
  status: string | null;
  first_seen: Date;
  last_received: Date | null;
  clock_offset_s: number | null;
  last_reading_at: Date | null;
  status_at: Date | null;
}

/**
 * Every device with its newest activity by the collector's receive clock (`last_received`), its
 * newest reading (device time), its latest status and when it arrived, and its clock offset.
 */
export async function loadActivity(db: Queryable): Promise<DeviceRow[]> {
  const rows = await db.sql<ActivityRecord>`
    select d.device_id, d.device_name, d.location, d.firmware_version,
           lower(d.status) as status, d.first_seen, d.last_received, d.clock_offset_s,
           (select max(s.last_seen) from sensors s where s.device_id = d.device_id)
             as last_reading_at,
           (select max(e.time) from device_events e
             where e.device_id = d.device_id and e.kind = 'status') as status_at
      from devices d
     order by d.device_id`;
  return rows.map((r) => ({
    deviceId: r.device_id,
    name: r.device_name,
    location: r.location,
    firmwareVersion: r.firmware_version,
    status: r.status,
    statusAt: toDate(r.status_at),
    lastReadingAt: toDate(r.last_reading_at),
    lastSeen: toDate(r.last_received),
    clockOffsetS: r.clock_offset_s === null ? null : Number(r.clock_offset_s),
    firstSeen: toDate(r.first_seen) ?? new Date(0),
  }));
}

interface AlertRecord {
  device_id: string;
  state: string;
  since: Date;
  notified_at: Date | null;
  pending: unknown;
  last_error: string | null;
}

/** Every `device_alerts` row. */
export async function loadAlertStates(db: Queryable): Promise<AlertState[]> {
  const rows = await db.sql<AlertRecord>`
    select device_id, state, since, notified_at, pending, last_error from device_alerts`;
  return rows.map((r) => ({
    deviceId: r.device_id,
    state: (["online", "silent", "offline"].includes(r.state) ? r.state : "online") as DeviceHealth,
    since: toDate(r.since) ?? new Date(0),
    notifiedAt: toDate(r.notified_at),
    pending: parseEvent(r.pending),
    lastError: r.last_error,
  }));
}

/** Upserts `states` in one transaction, stamped with the check time. */
export async function saveAlertStates(
  db: { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> },
  states: AlertState[],
  checkedAt: Date,
): Promise<void> {
  if (states.length === 0) return;
  await db.transaction(async (tx) => {
    for (const s of states) {
      const pending = s.pending ? JSON.stringify(s.pending) : null;
      await tx.sql`
        insert into device_alerts
               (device_id, state, since, notified_at, pending, last_error, checked_at)
        values (${s.deviceId}, ${s.state}, ${s.since}, ${s.notifiedAt},
                ${pending}::text::jsonb, ${s.lastError}, ${checkedAt})
        on conflict (device_id) do update
           set state = excluded.state, since = excluded.since,
               notified_at = excluded.notified_at, pending = excluded.pending,
               last_error = excluded.last_error, checked_at = excluded.checked_at`;
    }
  });
}

function toDate(v: unknown): Date | null {
  if (v === null || v === undefined) return null;
  const d = v instanceof Date ? v : new Date(String(v));
  return Number.isNaN(d.getTime()) ? null : d;
}

/** A saved pending event; anything unreadable counts as none rather than stopping the monitor. */
function parseEvent(v: unknown): AlertEvent | null {
  const o = typeof v === "string" ? safeJson(v) : v;
  if (!o || typeof o !== "object") return null;
  const r = o as Record<string, unknown>;
  const downSince = toDate(r.downSince);
  const at = toDate(r.at);
  if (!downSince || !at) return null;
  if (r.kind === "silent" || r.kind === "offline") return { kind: r.kind, downSince, at };
  if (r.kind === "back") return { kind: "back", downSince, at, unreported: r.unreported === true };
  return null;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return null;
  }
}
