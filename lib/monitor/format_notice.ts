import type { DeviceActivity, DeviceNotice, Notice, Notification } from "./types.ts";

/** Devices listed by name in a summary; the rest are counted. */
const SUMMARY_LIST_MAX = 12;

/** Turns what `detectSilence` decided into a message for a person, as of `now`. */
export function formatNotice(notice: Notice, opts: { now: Date }): Notification {
  if (notice.kind === "device") return formatDevice(notice.notice, opts.now);
  const { notices, count, total, direction } = notice;
  const n = notices.length;
  const list = notices.slice(0, SUMMARY_LIST_MAX).map((x) => `• ${line(x, opts.now)}`);
  if (n > SUMMARY_LIST_MAX) list.push(`… and ${n - SUMMARY_LIST_MAX} more`);
  const deviceIds = notices.map((x) => x.device.deviceId);
  const time = new Date(Math.max(...notices.map((x) => x.event.at.getTime())));
  if (direction === "down") {
    return {
      title: `${n} devices stopped reporting`,
      message: `${n} devices went silent at once (${count} of ${total} are now silent or ` +
        `offline): the MQTT broker, the network or the collector is probably down.\n` +
        list.join("\n"),
      priority: 0,
      time,
      deviceIds,
    };
  }
  return {
    title: `${n} devices are reporting again`,
    message: `${n} devices are reporting again (${count} of ${total} online).\n` + list.join("\n"),
    priority: -1,
    time,
    deviceIds,
  };
}

function formatDevice({ device, event }: DeviceNotice, now: Date): Notification {
  const who = label(device);
  const base = { time: event.at, deviceIds: [device.deviceId] };
  switch (event.kind) {
    case "silent":
      return {
        ...base,
        title: `${who} is silent`,
        message: `${describe(device)} has sent nothing for ` +
          `${formatDuration(now.getTime() - event.downSince.getTime())} ` +
          `(last seen ${formatTime(event.downSince)}).`,
        priority: 0,
      };
    case "offline":
      return {
        ...base,
        title: `${who} went offline`,
        message: `${describe(device)} reported itself offline at ${formatTime(event.downSince)}` +
          lastSeenSuffix(device, now) + ".",
        priority: 0,
      };
    case "back":
      return {
        ...base,
        title: `${who} is back`,
        message: `${describe(device)} is reporting again after ` +
          `${formatDuration(event.at.getTime() - event.downSince.getTime())} out ` +
          `(${formatTime(event.downSince)} to ${formatTime(event.at)}).` +
          (event.unreported ? " The alert for this outage could not be delivered." : ""),
        priority: -1,
      };
  }
}

function line({ device, event }: DeviceNotice, now: Date): string {
  if (event.kind === "back") {
    return `${describe(device)}: back after ` +
      formatDuration(event.at.getTime() - event.downSince.getTime());
  }
  const what = event.kind === "offline" ? "offline, last seen" : "last seen";
  return `${describe(device)}: ${what} ${
    formatDuration(now.getTime() - (device.lastSeen ?? event.downSince).getTime())
  } ago`;
}

function label(d: DeviceActivity): string {
  return d.name ?? d.deviceId;
}

/** "Office sensor (esp32-01) in office". */
function describe(d: DeviceActivity): string {
  let s = d.name && d.name !== d.deviceId ? `${d.name} (${d.deviceId})` : d.deviceId;
  if (d.location) s += ` in ${d.location}`;
  return s;
}

function lastSeenSuffix(d: DeviceActivity, now: Date): string {
  if (!d.lastSeen) return "";
  return `; last message ${formatDuration(now.getTime() - d.lastSeen.getTime())} ago`;
}

/** "45 s", "7 min", "2 h 5 min", "3 days". */
function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 90) return `${s} s`;
  const min = Math.round(s / 60);
  if (min < 90) return `${min} min`;
  const h = Math.floor(min / 60);
  if (h < 48) return min % 60 === 0 ? `${h} h` : `${h} h ${min % 60} min`;
  return `${Math.round(h / 24)} days`;
}

/** "2026-11-25 14:02 UTC". */
function formatTime(t: Date): string {
  return `${t.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}
