import { redact, type ResolvedMonitorConfig } from "../config/mod.ts";
import { type Db, openSessionLock, type SessionLock } from "../db/mod.ts";
import { type Logger, logger } from "../log/mod.ts";
import { abortableSleep } from "./_sleep.ts";
import {
  AlertStateConflict,
  claimAlerts,
  type Delivery,
  loadActivity,
  loadAlertStates,
  recordDelivery,
  releaseClaims,
  saveAlertStates,
  voidForeignClaims,
} from "./_store.ts";
import { detectSilence } from "./detect_silence.ts";
import { NotificationRejected } from "./errors.ts";
import { formatNotice } from "./format_notice.ts";
import { LogNotifier } from "./log_notifier.ts";
import { PushoverNotifier } from "./pushover_notifier.ts";
import type { AlertState, Notifier } from "./types.ts";

/** A running monitor. */
export interface Monitor {
  /** Resolves when the credential check and the first check are done; never rejects. */
  firstCheck: Promise<void>;
  /** Runs one check after those already started or queued (the first one included); never rejects. */
  checkNow(): Promise<void>;
  /** Stops the loop, cutting short delivery retries, and waits for it; idempotent. */
  stop(): Promise<void>;
}

/** Options of `startMonitor`; every field has a production default. */
export interface StartMonitorOptions {
  /** Where notifications go (default: Pushover when configured, else the log). */
  notifier?: Notifier;
  /** The clock (default `() => new Date()`). */
  now?: () => Date;
  /** The wait between delivery retries of the Pushover notifier built from the config. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Where the monitor's own log lines go (default: the `monitor` logger on stderr). */
  log?: Logger;
  /** Stops the monitor when aborted, like `stop()` (also during the first check). */
  signal?: AbortSignal;
  /**
   * The lease that makes this monitor the one that checks and notifies (default: a PostgreSQL
   * session advisory lock when `config.databaseUrl` is set and `db` is PostgreSQL; none, always
   * active, for the embedded database).
   */
  lease?: SessionLock | null;
}

/** Advisory lock key of the active monitor (per database). */
export const MONITOR_LOCK_KEY = 0x616d6233;

/**
 * Starts the device monitor and resolves at once: in the background it checks the notifier's
 * credentials, runs a first check, then one every `checkIntervalS`; `checkNow()` waits for the
 * checks before it, and start-up is never held up by a slow notification service.
 *
 * Each check reads the devices' activity and the saved `device_alerts` state, lets
 * `detectSilence` decide, saves the new state (pending messages included) and then delivers. A
 * message that could not be delivered stays pending and is sent at the next check; a message the
 * service refused for good (4xx) is logged and dropped. Database and delivery failures are logged
 * and never stop the loop.
 *
 * Several monitors may run against one PostgreSQL database: only the holder of the lease (a
 * session advisory lock) checks and notifies; the others stand by, try to take it over several
 * times per check interval, and the one that gets it checks at once. Every write of the alert
 * state checks the version it read, and a notification is claimed in the database before it is
 * sent, so a monitor that lost the lease without noticing yet neither repeats nor drops one.
 */
export function startMonitor(
  db: Db,
  config: ResolvedMonitorConfig,
  opts: StartMonitorOptions = {},
): Promise<Monitor> {
  const log = opts.log ?? logger("monitor");
  const now = opts.now ?? (() => new Date());
  const notifier = opts.notifier ?? defaultNotifier(config, opts, log);
  const stopping = new AbortController();
  const signal = stopping.signal;
  if (opts.signal?.aborted) stopping.abort(opts.signal.reason);
  opts.signal?.addEventListener("abort", () => stopping.abort(opts.signal!.reason), {
    once: true,
  });
  const intervalMs = config.checkIntervalS * 1000;
  // Stand-bys try for the lease, and the holder renews it, this often: a few times per interval.
  const heartbeatMs = Math.max(100, Math.min(intervalMs / 4, 5000));
  const lease = opts.lease !== undefined
    ? opts.lease
    : config.databaseUrl && db.kind === "postgres"
    ? openSessionLock({
      databaseUrl: config.databaseUrl,
      key: MONITOR_LOCK_KEY,
      appName: "monitor-lease",
      expireAfterMs: Math.max(4 * heartbeatMs, 3000),
    })
    : null;
  const owner = `monitor-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;

  const validate = async () => {
    if (!notifier.validate) return;
    const name = notifier.name.charAt(0).toUpperCase() + notifier.name.slice(1);
    try {
      await notifier.validate({ signal });
      log.info(`${name} credentials accepted`);
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof NotificationRejected) {
        log.error(
          `${error.message}. Notifications will be refused until this is fixed; ` +
            "the monitor keeps running and logs every alert.",
        );
      } else {
        log.warn(`Cannot check the ${name} credentials now: ${message(error)}`);
      }
    }
  };
  const outage = outageLog({
    log,
    repeatMs: OUTAGE_REPEAT_MS,
    secrets: secretsOf(config.databaseUrl),
  });

  // Lease: `active` is this monitor's belief, confirmed on the lease's own connection.
  let active = lease === null;
  const confirmLease = async (): Promise<boolean> => {
    if (!lease || signal.aborted) return active && !signal.aborted;
    try {
      const was = active;
      active = was ? await lease.held() : await lease.tryAcquire();
      if (active && !was) {
        log.info("This monitor is now the active one (lease acquired)");
        const voided = await voidForeignClaims(db, owner);
        if (voided > 0) {
          log.warn("Took over deliveries the previous monitor had not recorded", {
            devices: voided,
          });
        }
      }
      if (!active && was) log.warn("Lease lost; another monitor may take over. Standing by.");
    } catch (error) {
      // The lease lives in the monitored database: this is the same outage.
      outage.failed(error, now());
      active = false;
    }
    return active;
  };

  const check = async () => {
    if (signal.aborted) return;
    if (!(await confirmLease())) return;
    try {
      await runCheck({ db, config, notifier, now: now(), log, signal, outage, owner });
    } catch (error) {
      log.error(`Monitor check failed unexpectedly: ${message(error)}`);
    }
  };
  // Checks run one at a time, in order; the credential check and the first check come first.
  let chain: Promise<void> = validate();
  const checkNow = (): Promise<void> => {
    chain = chain.then(check);
    return chain;
  };

  log.info("Monitor started", {
    check_interval_s: config.checkIntervalS,
    inactivity_threshold_s: config.inactivityThresholdS,
    notifier: notifier.name,
    ...(lease ? { redundant: "one active monitor per database (lease)" } : {}),
  });
  const firstCheck = checkNow();
  const loop = (async () => {
    while (!signal.aborted) {
      try {
        await abortableSleep(intervalMs, signal);
      } catch {
        return;
      }
      await checkNow();
    }
  })();
  // A stand-by takes over within a heartbeat of the lease coming free, and checks at once.
  const standby = lease && (async () => {
    await firstCheck;
    while (!signal.aborted) {
      try {
        await abortableSleep(heartbeatMs, signal);
      } catch {
        return;
      }
      // Not after the running check: a long delivery must not let the lease expire.
      const was = active;
      if (await confirmLease() && !was) await checkNow();
    }
  })();

  let stopped: Promise<void> | undefined;
  return Promise.resolve({
    firstCheck,
    checkNow,
    stop() {
      stopped ??= (async () => {
        stopping.abort(new Error("the monitor is stopping"));
        await loop;
        await standby;
        await chain;
        await lease?.close().catch(() => {});
        log.info("Monitor stopped");
      })();
      return stopped;
    },
  });
}

function defaultNotifier(
  config: ResolvedMonitorConfig,
  opts: StartMonitorOptions,
  log: Logger,
): Notifier {
  if (!config.pushover) {
    log.warn(
      "PUSHOVER_USER and PUSHOVER_TOKEN are not set: alerts are only written to this log",
    );
    return new LogNotifier({ log });
  }
  return new PushoverNotifier({
    ...config.pushover,
    serverUrl: config.serverUrl,
    sleep: opts.sleep,
    log,
  });
}

interface CheckContext {
  db: Db;
  config: ResolvedMonitorConfig;
  notifier: Notifier;
  now: Date;
  log: Logger;
  signal: AbortSignal;
  outage: OutageLog;
  /** This monitor's name in notification claims. */
  owner: string;
}

/**
 * A notification is claimed for this long; delivery (retries included) is cut short before, so
 * the claim never runs out while this monitor may still send.
 */
const CLAIM_MS = 60_000;
const SEND_LIMIT_MS = CLAIM_MS - 10_000;

async function runCheck(ctx: CheckContext): Promise<void> {
  const { db, log, now } = ctx;
  let result;
  let previous: Map<string, AlertState>;
  let versions: Map<string, number>;
  try {
    const [devices, state] = [await loadActivity(db), await loadAlertStates(db)];
    previous = new Map(state.map((s) => [s.deviceId, s]));
    result = detectSilence({ devices, state, now, thresholdS: ctx.config.inactivityThresholdS });
    versions = await saveAlertStates(db, result.changed, now);
  } catch (error) {
    if (error instanceof AlertStateConflict) {
      log.info(`Another monitor is checking (${error.message}); this check stops here`);
      return;
    }
    ctx.outage.failed(error, now);
    return;
  }
  ctx.outage.succeeded(now);
  for (const s of result.changed) {
    const was = previous.get(s.deviceId)?.state ?? "online";
    if (s.state !== was) {
      log.info(`Device ${s.deviceId} is ${s.state}`, { since: s.since.toISOString() });
    }
  }
  const versionOf = (id: string) =>
    versions.get(id) ?? result.states.find((s) => s.deviceId === id)?.version;

  for (const notice of result.notify) {
    if (ctx.signal.aborted) break;
    const n = formatNotice(notice, { now });
    const claim = n.deviceIds.map((id) => ({ deviceId: id, version: versionOf(id) }));
    const record = async (delivery: Delivery) => {
      try {
        await recordDelivery(db, n.deviceIds, ctx.owner, delivery, now);
      } catch (error) {
        log.error(
          `Cannot record the notification (it may be sent again): ${message(error)}`,
          { title: n.title },
        );
      }
    };
    try {
      if (claim.some((c) => c.version === undefined)) continue;
      const ok = await claimAlerts(
        db,
        claim as { deviceId: string; version: number }[],
        ctx.owner,
        CLAIM_MS,
      );
      if (!ok) {
        log.info(`Another monitor is delivering: ${n.title}`);
        continue;
      }
    } catch (error) {
      log.warn(`Cannot claim the notification; it stays pending: ${message(error)}`, {
        title: n.title,
      });
      continue;
    }
    const limit = AbortSignal.timeout(SEND_LIMIT_MS);
    try {
      await ctx.notifier.send(n, { signal: AbortSignal.any([ctx.signal, limit]) });
      log.info(`Notification sent: ${n.title}`, { via: ctx.notifier.name });
      await record({ done: true, notifiedAt: now, lastError: null });
    } catch (error) {
      if (ctx.signal.aborted) {
        log.info(`Stopping; notification stays pending: ${n.title}`);
        await releaseClaims(db, n.deviceIds, ctx.owner).catch(() => {});
        break;
      }
      if (error instanceof NotificationRejected) {
        log.error(`Notification dropped, not retried: ${error.message}`, {
          title: n.title,
          message: n.message,
        });
        await record({ done: true, notifiedAt: null, lastError: error.message });
      } else {
        const why = limit.aborted ? "delivery took too long" : message(error);
        log.warn(
          `Notification not delivered; it stays pending for the next check: ${why}`,
          { title: n.title },
        );
        await record({ done: false, notifiedAt: null, lastError: why });
      }
    }
  }
}

/** While the database stays unreachable, the failure is logged again at most this often. */
const OUTAGE_REPEAT_MS = 10 * 60_000;

/** Reports database outages without repeating the same line at every check. */
interface OutageLog {
  /** A check could not read or save its state. */
  failed(error: unknown, now: Date): void;
  /** A check read and saved its state. */
  succeeded(now: Date): void;
}

/**
 * Logs the first failed check of an outage (with its reason), then again at most every
 * `repeatMs` while checks keep failing, and once when a check succeeds again.
 */
function outageLog(opts: { log: Logger; repeatMs: number; secrets: string[] }): OutageLog {
  const { log, repeatMs } = opts;
  let down: { since: Date; loggedAt: Date; failures: number } | undefined;
  const reason = (error: unknown) => {
    let text = redact(message(error));
    for (const secret of opts.secrets) text = text.replaceAll(secret, "***");
    return text;
  };
  return {
    failed(error, now) {
      if (!down) {
        down = { since: now, loggedAt: now, failures: 1 };
        log.error(
          `Monitor check failed; retrying at the next check: database error: ${reason(error)}`,
        );
        return;
      }
      down.failures++;
      if (now.getTime() - down.loggedAt.getTime() < repeatMs) return;
      down.loggedAt = now;
      log.error(`Monitor checks still failing: database error: ${reason(error)}`, {
        down_for_s: Math.round((now.getTime() - down.since.getTime()) / 1000),
        failed_checks: down.failures,
      });
    },
    succeeded(now) {
      if (!down) return;
      log.info("Database reachable again; monitor checks resumed", {
        down_for_s: Math.round((now.getTime() - down.since.getTime()) / 1000),
        failed_checks: down.failures,
      });
      down = undefined;
    },
  };
}

/** The password of the database URL, raw and decoded, to keep out of log lines. */
function secretsOf(databaseUrl: string | undefined): string[] {
  if (!databaseUrl) return [];
  try {
    const password = new URL(databaseUrl).password;
    if (!password) return [];
    return [...new Set([password, decodeURIComponent(password)])];
  } catch {
    return [];
  }
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
