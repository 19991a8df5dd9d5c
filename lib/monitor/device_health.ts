import type { DeviceActivity, DeviceHealth } from "./types.ts";

/** Options of `deviceHealth`. */
export interface DeviceHealthOptions {
  now: Date;
  /** Seconds without activity after which a device is silent. */
  thresholdS: number;
}

/**
 * Classifies one device. It is `offline` as soon as its latest status says so, unless a message
 * arrived after that status (a device that reconnects without announcing `online` is not stuck
 * offline); `silent` when its newest activity is older than the threshold; `online` otherwise.
 * `since` is when that began: the offline status time, or the last activity.
 */
export function deviceHealth(
  device: DeviceActivity,
  opts: DeviceHealthOptions,
): { health: DeviceHealth; since: Date; lastActivity: Date } {
  const lastActivity = device.lastSeen ?? device.firstSeen;
  // Both times are the collector's receive times; the status message itself moved `lastSeen`.
  const activityAfterStatus = device.lastSeen !== null && device.statusAt !== null &&
    device.lastSeen.getTime() > device.statusAt.getTime();
  if (device.status === "offline" && !activityAfterStatus) {
    return { health: "offline", since: device.statusAt ?? lastActivity, lastActivity };
  }
  const quietMs = opts.now.getTime() - lastActivity.getTime();
  if (quietMs > opts.thresholdS * 1000) {
    return { health: "silent", since: lastActivity, lastActivity };
  }
  return { health: "online", since: lastActivity, lastActivity };
}
