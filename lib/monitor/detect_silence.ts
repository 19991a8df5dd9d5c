import { deviceHealth } from "./device_health.ts";
import type { AlertEvent, AlertState, DeviceActivity, DeviceNotice, Notice } from "./types.ts";

/**
 * A summary replaces per-device messages when at least this many devices have a message of the
 * same direction due…
 */
export const SUMMARY_MIN_DEVICES = 3;
/** …and more than this share of all known devices is in that direction after the check. */
export const SUMMARY_MIN_SHARE = 0.5;

/** Input of `detectSilence`. */
export interface DetectSilenceOptions {
  /** Every known device with its latest activity. */
  devices: DeviceActivity[];
  /** Current `device_alerts` rows; devices without one are treated as online and unannounced. */
  state: AlertState[];
  now: Date;
  /** Seconds without activity after which a device is silent. */
  thresholdS: number;
}

/** Output of `detectSilence`. */
export interface DetectSilenceResult {
  /** The new state of every device in `devices`, in the same order. */
  states: AlertState[];
  /** The subset of `states` that differs from the input and must be saved. */
  changed: AlertState[];
  /** What to send now: every pending event, grouped into summaries where they apply. */
  notify: Notice[];
}

/**
 * One monitor check, as a pure function of the devices' activity, the saved state and the time.
 *
 * Per device: a device that goes silent or offline owes one "down" message, one that reports
 * again owes one "back" message; a message stays pending in the state until it is delivered, so
 * a restart neither repeats nor forgets. Going from silent to offline (or back) within one outage
 * owes nothing new. When a device comes back before its outage alert was delivered, the two
 * collapse into one "back" message that gives the outage's length; when it falls silent again
 * before its "back" message was delivered, nothing is owed (the user still believes it is down).
 *
 * Summary rule: when at least `SUMMARY_MIN_DEVICES` (3) devices owe a "down" message and more
 * than half (`SUMMARY_MIN_SHARE`) of all known devices are silent or offline after this check,
 * one summary replaces their messages (the broker, the network or the collector is probably
 * down). Likewise for "back" messages when more than half of the devices are online.
 */
export function detectSilence(opts: DetectSilenceOptions): DetectSilenceResult {
  const previous = new Map(opts.state.map((s) => [s.deviceId, s]));
  const states: AlertState[] = [];
  const changed: AlertState[] = [];
  const due: DeviceNotice[] = [];
  for (const device of opts.devices) {
    const prev = previous.get(device.deviceId);
    const next = nextState(device, prev, opts);
    states.push(next);
    if (!prev || !sameState(prev, next)) changed.push(next);
    if (next.pending) due.push({ device, event: next.pending });
  }

  const total = opts.devices.length;
  const down = due.filter((n) => n.event.kind !== "back");
  const up = due.filter((n) => n.event.kind === "back");
  const downCount = states.filter((s) => s.state !== "online").length;
  const upCount = total - downCount;
  const notify: Notice[] = [];
  for (
    const [direction, notices, count] of [["down", down, downCount], ["up", up, upCount]] as const
  ) {
    if (notices.length >= SUMMARY_MIN_DEVICES && count > total * SUMMARY_MIN_SHARE) {
      notify.push({ kind: "summary", direction, notices, count, total });
    } else {
      for (const notice of notices) notify.push({ kind: "device", notice });
    }
  }
  return { states, changed, notify };
}

function nextState(
  device: DeviceActivity,
  prev: AlertState | undefined,
  opts: DetectSilenceOptions,
): AlertState {
  const { health, since, lastActivity } = deviceHealth(device, opts);
  const isDown = health !== "online";
  const downEvent = (): AlertEvent =>
    health === "offline"
      ? { kind: "offline", downSince: since, at: device.statusAt ?? opts.now }
      : {
        kind: "silent",
        downSince: since,
        at: new Date(since.getTime() + opts.thresholdS * 1000),
      };

  if (!prev) {
    return {
      deviceId: device.deviceId,
      state: health,
      since: isDown ? since : device.firstSeen,
      notifiedAt: null,
      pending: isDown ? downEvent() : null,
      lastError: null,
    };
  }
  const wasDown = prev.state !== "online";
  if (!wasDown && isDown) {
    // The user believes the device is down while its "back" message is still undelivered.
    const userThinksDown = prev.pending?.kind === "back" && !prev.pending.unreported;
    return { ...prev, state: health, since, pending: userThinksDown ? null : downEvent() };
  }
  if (wasDown && !isDown) {
    // A pending down event means the user never heard of this outage.
    const unreported = prev.pending !== null && prev.pending.kind !== "back";
    return {
      ...prev,
      state: "online",
      since: lastActivity,
      pending: { kind: "back", downSince: prev.since, at: lastActivity, unreported },
    };
  }
  if (wasDown && isDown && prev.state !== health) {
    // Silent ↔ offline: the same outage; nothing new to say.
    return { ...prev, state: health };
  }
  return prev;
}

function sameState(a: AlertState, b: AlertState): boolean {
  return a.state === b.state && a.since.getTime() === b.since.getTime() &&
    a.notifiedAt?.getTime() === b.notifiedAt?.getTime() && a.lastError === b.lastError &&
    JSON.stringify(a.pending) === JSON.stringify(b.pending);
}
