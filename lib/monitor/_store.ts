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
  version: number;
}

/** Every `device_alerts` row. */
export async function loadAlertStates(db: Queryable): Promise<AlertState[]> {
  const rows = await db.sql<AlertRecord>`
    select device_id, state, since, notified_at, pending, last_error, version
      from device_alerts`;
  return rows.map((r) => ({
    deviceId: r.device_id,
    state: (["online", "silent", "offline"].includes(r.state) ? r.state : "online") as DeviceHealth,
    since: toDate(r.since) ?? new Date(0),
    notifiedAt: toDate(r.notified_at),
    pending: parseEvent(r.pending),
    lastError: r.last_error,
    version: Number(r.version),
  }));
}

/** Another monitor wrote the alert state since this one read it; nothing was saved. */
export class AlertStateConflict extends Error {
  constructor(deviceId: string) {
    super(`the alert state of ${deviceId} was changed by another monitor`);
    this.name = "AlertStateConflict";
  }
}

/**
 * Saves `states` in one transaction, stamped with the check time, each only if its row is still
 * at the version read (a new row only if there is none); otherwise rolls back and throws
 * `AlertStateConflict`. Returns the new version of each row.
 */
export async function saveAlertStates(
  db: Transactional,
  states: AlertState[],
  checkedAt: Date,
): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  if (states.length === 0) return versions;
  await db.transaction(async (tx) => {
    for (const s of states) {
      const pending = s.pending ? JSON.stringify(s.pending) : null;
      const rows = s.version === undefined
        ? await tx.sql<{ version: number }>`
          insert into device_alerts
                 (device_id, state, since, notified_at, pending, last_error, checked_at, version)
          values (${s.deviceId}, ${s.state}, ${s.since}, ${s.notifiedAt},
                  ${pending}::text::jsonb, ${s.lastError}, ${checkedAt}, 1)
          on conflict (device_id) do nothing
          returning version`
        : await tx.sql<{ version: number }>`
          update device_alerts
             set state = ${s.state}, since = ${s.since}, notified_at = ${s.notifiedAt},
                 pending = ${pending}::text::jsonb, last_error = ${s.lastError},
                 checked_at = ${checkedAt}, version = version + 1
           where device_id = ${s.deviceId} and version = ${s.version}
          returning version`;
      if (rows.length === 0) throw new AlertStateConflict(s.deviceId);
      versions.set(s.deviceId, Number(rows[0].version));
    }
  });
  return versions;
}

/**
 * Claims the pending notification of `devices` (each at the version given) for `owner` until
 * `ttlMs` from now on the database's clock: all or none. False when another monitor changed one
 * of them or holds an unexpired claim on it: that one delivers.
 */
export async function claimAlerts(
  db: Transactional,
  devices: { deviceId: string; version: number }[],
  owner: string,
  ttlMs: number,
): Promise<boolean> {
  try {
    await db.transaction(async (tx) => {
      const rows = await tx.sql`
        update device_alerts a
           set claimed_by = ${owner},
               claimed_until = now() + ${ttlMs}::float8 * interval '1 millisecond',
               version = a.version + 1
          from unnest(${devices.map((d) => d.deviceId)}::text[],
                      ${devices.map((d) => d.version)}::int8[]) as u(id, v)
         where a.device_id = u.id and a.version = u.v and a.pending is not null
           and (a.claimed_by is null or a.claimed_by = ${owner} or a.claimed_until < now())
        returning a.device_id`;
      if (rows.length !== devices.length) throw NOT_ALL;
    });
    return true;
  } catch (error) {
    if (error === NOT_ALL) return false;
    throw error;
  }
}

const NOT_ALL = new Error("not every alert could be claimed");

/** What became of a claimed notification. */
export interface Delivery {
  /** Delivered, or refused for good: nothing is pending any more. */
  done: boolean;
  /** Delivery time, when delivered. */
  notifiedAt: Date | null;
  /** Why delivery failed; null when delivered. */
  lastError: string | null;
}

/** Records the outcome of a notification `owner` claimed and gives the claim up. */
export async function recordDelivery(
  db: Queryable,
  deviceIds: string[],
  owner: string,
  delivery: Delivery,
  checkedAt: Date,
): Promise<void> {
  await db.sql`
    update device_alerts
       set pending = case when ${delivery.done}::boolean then null else pending end,
           notified_at = coalesce(${delivery.notifiedAt}::timestamptz, notified_at),
           last_error = ${delivery.lastError}::text, checked_at = ${checkedAt},
           claimed_by = null, claimed_until = null, version = version + 1
     where device_id = any(${deviceIds}::text[]) and claimed_by = ${owner}`;
}

/** Gives up claims of `owner` without recording anything (the monitor is stopping). */
export async function releaseClaims(db: Queryable, deviceIds: string[], owner: string) {
  await db.sql`
    update device_alerts set claimed_by = null, claimed_until = null
     where device_id = any(${deviceIds}::text[]) and claimed_by = ${owner}`;
}

/**
 * Voids the claims of other monitors, for one that has just taken the lease: the lease had to be
 * given up (or its session lost) for this one to get it, so their deliveries will never be
 * recorded. Without this a delivery cut off by a crash would wait for its claim to expire.
 * Returns how many claims were voided.
 */
export async function voidForeignClaims(db: Queryable, owner: string): Promise<number> {
  const rows = await db.sql<{ device_id: string }>`
    update device_alerts set claimed_by = null, claimed_until = null, version = version + 1
     where claimed_by is not null and claimed_by <> ${owner}
    returning device_id`;
  return rows.length;
}

type Transactional = { transaction<T>(fn: (tx: Queryable) => Promise<T>): Promise<T> };

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
