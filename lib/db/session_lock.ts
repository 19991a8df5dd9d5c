import postgres from "postgres";
import { reconnectDelayS } from "./_postgres.ts";

/**
 * A PostgreSQL session advisory lock held on a connection of its own, as a lease: whoever holds it
 * is the one process of its kind doing a job. The server releases it the moment that session
 * ends — the process stopped, was killed, or its connection dropped — and, through
 * `idle_session_timeout`, within `expireAfterMs` of the holder going quiet (a connection lost
 * without the server noticing).
 */
export interface SessionLock {
  /** Takes the lock if it is free; true when this process holds it now. */
  tryAcquire(): Promise<boolean>;
  /**
   * True while this process still holds the lock: the session that took it is alive (a round
   * trip on it). Doubles as the heartbeat that keeps `idle_session_timeout` from firing.
   */
  held(): Promise<boolean>;
  /** Gives the lock up (the connection stays open); harmless when not held. */
  release(): Promise<void>;
  /** Releases the lock and closes the connection; idempotent. */
  close(): Promise<void>;
}

/** Options of `openSessionLock`. */
export interface SessionLockOptions {
  /** PostgreSQL URL. */
  databaseUrl: string;
  /** The advisory lock key (per database), a positive 31-bit integer. */
  key: number;
  /** `application_name` of the lock's connection. */
  appName: string;
  /**
   * The server ends the holder's session after this long without a `held()` call (PostgreSQL 14
   * and later; ignored by older servers), so a holder whose connection vanished loses the lock.
   */
  expireAfterMs: number;
}

/** Opens the connection of a `SessionLock` lazily, at the first call. */
export function openSessionLock(opts: SessionLockOptions): SessionLock {
  // One connection that is never closed for idleness or age: its session is the lease.
  const sql = postgres(opts.databaseUrl, {
    max: 1,
    idle_timeout: 0,
    max_lifetime: 0,
    connect_timeout: 5,
    backoff: reconnectDelayS,
    onnotice: () => {},
    connection: { application_name: opts.appName },
  });
  if (!Number.isInteger(opts.key) || opts.key <= 0 || opts.key >= 2 ** 31) {
    throw new RangeError("the lock key must be a positive 31-bit integer");
  }
  let holding = false;
  let closed = false;
  // A bigint key shows in pg_locks as classid (high 32 bits), objid (low 32 bits), objsubid 1.
  const stillHeld = async () =>
    (await sql`
      select exists (
        select from pg_locks
         where locktype = 'advisory' and pid = pg_backend_pid() and granted
           and classid::text = '0' and objid::text = ${String(opts.key)} and objsubid = 1
      ) as held`)[0].held === true;
  return {
    async tryAcquire() {
      if (closed) return false;
      if (holding && await this.held()) return true;
      const [row] = await sql`select pg_try_advisory_lock(${opts.key}::int8) as ok`;
      if (row.ok !== true) return false;
      holding = true;
      try {
        const ms = Math.max(1000, Math.round(opts.expireAfterMs));
        await sql`select set_config('idle_session_timeout', ${String(ms)}, false)`;
      } catch {
        // PostgreSQL before 14 has no idle_session_timeout; a killed holder still frees the lock.
      }
      return true;
    },
    async held() {
      if (!holding || closed) return false;
      try {
        // A new session (the pool reconnected after losing the old one) does not hold it.
        if (await stillHeld()) return true;
      } catch {
        // The session is gone, and the lock with it.
      }
      holding = false;
      return false;
    },
    async release() {
      if (!holding) return;
      holding = false;
      try {
        await sql`select pg_advisory_unlock_all()`;
      } catch {
        // The session is gone already, and the lock with it.
      }
    },
    async close() {
      if (closed) return;
      await this.release();
      closed = true;
      await sql.end({ timeout: 2 });
    },
  };
}
