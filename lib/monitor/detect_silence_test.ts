import { deepEqual, equal, ok } from "node:assert/strict";
import { detectSilence } from "./detect_silence.ts";
import { deviceHealth } from "./device_health.ts";
import { formatNotice } from "./format_notice.ts";
import type { AlertState, DeviceActivity, Notice } from "./types.ts";

const T0 = new Date("2026-03-01T12:00:00Z");
const THRESHOLD_S = 300;

function at(seconds: number): Date {
  return new Date(T0.getTime() + seconds * 1000);
}

function device(
  id: string,
  lastSeenS: number,
  extra: Partial<DeviceActivity> = {},
): DeviceActivity {
  return {
    deviceId: id,
    name: null,
    location: null,
    status: "online",
    statusAt: at(-3600),
    lastReadingAt: at(lastSeenS),
    lastSeen: at(lastSeenS),
    firstSeen: at(-3600),
    ...extra,
  };
}

/** Runs one check at `nowS` seconds after T0. */
function check(devices: DeviceActivity[], state: AlertState[], nowS: number) {
  return detectSilence({ devices, state, now: at(nowS), thresholdS: THRESHOLD_S });
}

function kinds(notify: Notice[]): string[] {
  return notify.map((n) =>
    n.kind === "summary"
      ? `summary-${n.direction}:${n.notices.map((x) => x.device.deviceId).join(",")}`
      : `${n.notice.event.kind}:${n.notice.device.deviceId}`
  );
}

/** The state after every pending message was delivered at `nowS`. */
function delivered(states: AlertState[], nowS: number): AlertState[] {
  return states.map((s) => s.pending ? { ...s, pending: null, notifiedAt: at(nowS) } : s);
}

Deno.test("deviceHealth() calls a device silent only once the threshold has passed", () => {
  const d = device("a", 0);
  equal(deviceHealth(d, { now: at(300), thresholdS: THRESHOLD_S }).health, "online");
  equal(deviceHealth(d, { now: at(301), thresholdS: THRESHOLD_S }).health, "silent");
});

Deno.test("deviceHealth() calls a device offline at once when its status says so", () => {
  const d = device("a", 10, { status: "offline", statusAt: at(20), lastSeen: at(20) });
  const h = deviceHealth(d, { now: at(21), thresholdS: THRESHOLD_S });
  equal(h.health, "offline");
  deepEqual(h.since, at(20));
});

Deno.test("deviceHealth() ignores an offline status older than the newest reading", () => {
  const d = device("a", 60, { status: "offline", statusAt: at(20) });
  equal(deviceHealth(d, { now: at(70), thresholdS: THRESHOLD_S }).health, "online");
});

Deno.test("deviceHealth() measures a device that never reported from when it was registered", () => {
  const d = device("a", 0, { lastSeen: null, lastReadingAt: null, statusAt: null, status: null });
  d.firstSeen = at(0);
  equal(deviceHealth(d, { now: at(200), thresholdS: THRESHOLD_S }).health, "online");
  equal(deviceHealth(d, { now: at(400), thresholdS: THRESHOLD_S }).health, "silent");
});

Deno.test("detectSilence() owes one alert when a device goes silent and one when it is back", () => {
  const fleet = [device("a", 0), device("b", 0), device("c", 0)];
  let r = check(fleet, [], 60);
  deepEqual(kinds(r.notify), []);
  equal(r.changed.length, 3, "first sight of each device is saved");

  fleet[0] = device("a", 0);
  fleet[1] = device("b", 400);
  fleet[2] = device("c", 400);
  r = check(fleet, r.states, 400);
  deepEqual(kinds(r.notify), ["silent:a"]);
  equal(r.states[0].state, "silent");
  deepEqual(r.states[0].since, at(0));
  deepEqual(r.notify[0].kind === "device" && r.notify[0].notice.event.at, at(300));

  // Delivered: later checks while it stays silent owe nothing.
  let state = delivered(r.states, 400);
  r = check(fleet, state, 460);
  deepEqual(kinds(r.notify), []);
  equal(r.changed.length, 0);

  fleet[0] = device("a", 500);
  r = check(fleet, state, 520);
  deepEqual(kinds(r.notify), ["back:a"]);
  const back = r.notify[0].kind === "device" ? r.notify[0].notice.event : undefined;
  deepEqual(back, { kind: "back", downSince: at(0), at: at(500), unreported: false });
  state = delivered(r.states, 520);
  deepEqual(kinds(check(fleet, state, 580).notify), []);
});

Deno.test("detectSilence() keeps an undelivered alert pending until it is delivered", () => {
  const fleet = [device("a", 0), device("b", 390), device("c", 390)];
  const first = check(fleet, [], 400);
  deepEqual(kinds(first.notify), ["silent:a"]);
  // Delivery failed: the state saved still has it pending, so the next check owes it again.
  const again = check(fleet, first.states, 460);
  deepEqual(kinds(again.notify), ["silent:a"]);
  equal(again.changed.length, 0, "nothing new to save");
});

Deno.test("detectSilence() turns an undelivered alert into one recovery message giving the outage", () => {
  const fleet = [device("a", 0), device("b", 390), device("c", 390)];
  const down = check(fleet, [], 400);
  fleet[0] = device("a", 450);
  const up = check(fleet, down.states, 460);
  deepEqual(kinds(up.notify), ["back:a"]);
  const n = formatNotice(up.notify[0], { now: at(460) });
  ok(n.message.includes("could not be delivered"), n.message);
  ok(n.message.includes("8 min out"), n.message);
});

Deno.test("detectSilence() owes nothing when a device falls silent again before its recovery was sent", () => {
  const fleet = [device("a", 0), device("b", 390), device("c", 390)];
  const down = check(fleet, [], 400);
  const told = delivered(down.states, 400);
  fleet[0] = device("a", 450);
  const up = check(fleet, told, 460);
  deepEqual(kinds(up.notify), ["back:a"]);
  // The recovery was never delivered and the device is quiet again: the user's view is right.
  fleet[1] = device("b", 790);
  fleet[2] = device("c", 790);
  const r = check(fleet, up.states, 800);
  deepEqual(kinds(r.notify), []);
  equal(r.states[0].state, "silent");
});

Deno.test("detectSilence() does not alert again when a silent device reports offline", () => {
  const fleet = [device("a", 0), device("b", 590), device("c", 590)];
  const told = delivered(check(fleet, [], 400).states, 400);
  fleet[0] = device("a", 0, { status: "offline", statusAt: at(500), lastSeen: at(500) });
  const r = check(fleet, told, 600);
  deepEqual(kinds(r.notify), []);
  equal(r.states[0].state, "offline");
  deepEqual(r.states[0].since, at(0), "the outage still started at the last activity");
});

Deno.test("detectSilence() alerts on an offline status before the threshold", () => {
  const fleet = [device("a", 0), device("b", 0), device("c", 0)];
  const start = check(fleet, [], 10);
  fleet[0] = device("a", 0, { status: "offline", statusAt: at(15), lastSeen: at(15) });
  const r = check(fleet, start.states, 20);
  deepEqual(kinds(r.notify), ["offline:a"]);
  const n = formatNotice(r.notify[0], { now: at(20) });
  equal(n.title, "a went offline");
});

Deno.test("detectSilence() sends one summary when most devices go silent in the same check", () => {
  const fleet = ["a", "b", "c", "d", "e"].map((id) => device(id, 0));
  const start = check(fleet, [], 10);
  fleet[4] = device("e", 390);
  const r = check(fleet, start.states, 400);
  deepEqual(kinds(r.notify), ["summary-down:a,b,c,d"]);
  const n = formatNotice(r.notify[0], { now: at(400) });
  equal(n.title, "4 devices stopped reporting");
  ok(n.message.includes("4 of 5"), n.message);
  deepEqual(n.deviceIds, ["a", "b", "c", "d"]);

  // All come back together: one summary again.
  const told = delivered(r.states, 400);
  const back = ["a", "b", "c", "d", "e"].map((id) => device(id, 500));
  deepEqual(kinds(check(back, told, 520).notify), ["summary-up:a,b,c,d"]);
});

Deno.test("detectSilence() sends separate alerts when only a minority goes silent", () => {
  // 3 of 7 silent: at least three, but not more than half of the fleet.
  const fleet = ["a", "b", "c", "d", "e", "f", "g"].map((id, i) => device(id, i < 3 ? 0 : 390));
  const r = check(fleet, [], 400);
  deepEqual(kinds(r.notify), ["silent:a", "silent:b", "silent:c"]);
});

Deno.test("detectSilence() sends separate alerts when only two of three devices go silent", () => {
  const fleet = [device("a", 0), device("b", 0), device("c", 390)];
  deepEqual(kinds(check(fleet, [], 400).notify), ["silent:a", "silent:b"]);
});

Deno.test("detectSilence() summarises the rest of a fleet that goes silent over two checks", () => {
  const fleet = ["a", "b", "c", "d", "e", "f"].map((id) => device(id, 0));
  let state = check(fleet, [], 10).states;
  // First check: two quiet (one message each), second check: three more, 5 of 6 down → summary.
  for (const i of [2, 3, 4, 5]) fleet[i] = device(fleet[i].deviceId, 60);
  let r = check(fleet, state, 301);
  deepEqual(kinds(r.notify), ["silent:a", "silent:b"]);
  state = delivered(r.states, 301);
  fleet[5] = device("f", 400);
  r = check(fleet, state, 400);
  deepEqual(kinds(r.notify), ["summary-down:c,d,e"]);
});

Deno.test("detectSilence() gives the same answer after a restart with the saved state", () => {
  const fleet = [device("a", 0), device("b", 390), device("c", 390)];
  const told = delivered(check(fleet, [], 400).states, 400);
  // A restarted monitor reads the same rows back: nothing is repeated, nothing changes.
  fleet[1] = device("b", 890);
  fleet[2] = device("c", 890);
  const r = check(fleet, structuredClone(told), 900);
  deepEqual(kinds(r.notify), []);
  equal(r.changed.length, 0);
  equal(r.states[0].state, "silent");
});

Deno.test("formatNotice() names the device, its location, when it was last seen and for how long", () => {
  const d = device("esp32-01", 0, { name: "Office sensor", location: "office" });
  const r = check([d, device("b", 890), device("c", 890)], [], 900);
  const n = formatNotice(r.notify[0], { now: at(900) });
  equal(n.title, "Office sensor is silent");
  equal(
    n.message,
    "Office sensor (esp32-01) in office has sent nothing for 15 min " +
      "(last seen 2026-03-01 12:00 UTC).",
  );
  equal(n.priority, 0);
  deepEqual(n.time, at(300));
});

Deno.test("detectSilence() announces devices one by one when their return leaves most still down", () => {
  const ids = ["a", "b", "c", "d", "e", "f", "g", "h"];
  const fleet = ids.map((id) => device(id, 0));
  const down = delivered(check(fleet, [], 400).states, 400);
  for (const i of [0, 1, 2]) fleet[i] = device(ids[i], 500);
  // Three are back, but only 3 of 8 are online: separate messages name each one.
  deepEqual(kinds(check(fleet, down, 520).notify), ["back:a", "back:b", "back:c"]);
});
