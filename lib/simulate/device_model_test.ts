import { deepStrictEqual as assertEquals, notDeepStrictEqual, ok } from "node:assert/strict";
import { ROOM_KINDS, type RoomKind } from "./_curves.ts";
import { DeviceModel, type SensorReadings } from "./device_model.ts";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
// Local time, so the tests hold in any time zone. 2026-11-23 is a Monday.
const MONDAY = new Date(2026, 10, 23, 0, 0).getTime();

/** Readings every `stepMin` minutes for `days` days from `start`. */
function run(
  opts: { room: RoomKind; seed?: string; start?: number; days: number; stepMin?: number },
): { at: Date; r: SensorReadings }[] {
  const start = opts.start ?? MONDAY;
  const model = new DeviceModel({
    room: opts.room,
    seed: opts.seed ?? "test",
    deviceKey: `dev-${opts.room}`,
    startMs: start,
  });
  const out = [];
  const step = (opts.stepMin ?? 10) * MINUTE;
  for (let t = start; t < start + opts.days * 24 * HOUR; t += step) {
    out.push({ at: new Date(t), r: model.read(t) });
  }
  return out;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** Mean of `pick` over the readings taken on weekdays within [fromHour, toHour). */
function meanAt(
  rows: { at: Date; r: SensorReadings }[],
  pick: (r: SensorReadings) => number,
  opts: { from: number; to: number; weekdays?: boolean },
): number {
  return mean(
    rows.filter(({ at }) => {
      const h = at.getHours();
      const weekend = at.getDay() === 0 || at.getDay() === 6;
      return h >= opts.from && h < opts.to && (!opts.weekdays || !weekend);
    }).map(({ r }) => pick(r)),
  );
}

Deno.test("DeviceModel readings stay within what the sensors plausibly report, all week, in every room", () => {
  for (const room of ROOM_KINDS) {
    for (const { at, r } of run({ room, days: 7, stepMin: 15 })) {
      const where = `${room} ${at.toISOString()}`;
      ok(r.scd30.co2 >= 400 && r.scd30.co2 <= 2000, `co2 ${r.scd30.co2} ${where}`);
      ok(r.scd30.temperature >= 19 && r.scd30.temperature <= 24, `temp ${where}`);
      ok(r.scd30.humidity >= 35 && r.scd30.humidity <= 65, `humidity ${where}`);
      ok(r.bmp280.temperature >= 19 && r.bmp280.temperature <= 24, `bmp temp ${where}`);
      ok(r.bmp280.pressure > 985 && r.bmp280.pressure < 1042, `pressure ${where}`);
      for (const v of [...Object.values(r.scd30), ...Object.values(r.bmp280)]) {
        ok(Number.isFinite(v), where);
      }
    }
  }
});

Deno.test("a bedroom's CO2 builds up overnight and falls once the window opens in the morning", () => {
  const rows = run({ room: "bedroom", days: 5 });
  const night = meanAt(rows, (r) => r.scd30.co2, { from: 4, to: 6, weekdays: true });
  const afternoon = meanAt(rows, (r) => r.scd30.co2, { from: 14, to: 17, weekdays: true });
  ok(night > 1200, `night ${night}`);
  ok(afternoon < 550, `afternoon ${afternoon}`);
  // The window opens around 6:45–7:15 on weekdays: by 9:00 the room is aired.
  const aired = meanAt(rows, (r) => r.scd30.co2, { from: 9, to: 10, weekdays: true });
  ok(aired < 600, `after airing ${aired}`);
});

Deno.test("an office's CO2 rises during weekday office hours and stays low at night and weekends", () => {
  const rows = run({ room: "office", days: 7 });
  const work = meanAt(rows, (r) => r.scd30.co2, { from: 15, to: 17, weekdays: true });
  const night = meanAt(rows, (r) => r.scd30.co2, { from: 1, to: 5 });
  const weekend = mean(
    rows.filter(({ at }) => at.getDay() === 0 || at.getDay() === 6).map(({ r }) => r.scd30.co2),
  );
  ok(work > 1000, `work ${work}`);
  ok(night < 500, `night ${night}`);
  ok(weekend < 500, `weekend ${weekend}`);
});

Deno.test("temperature is highest in the afternoon and lowest before dawn", () => {
  for (const room of ["bedroom", "office", "basement"] as const) {
    const rows = run({ room, days: 6 });
    const afternoon = meanAt(rows, (r) => r.scd30.temperature, { from: 15, to: 17 });
    const dawn = meanAt(rows, (r) => r.scd30.temperature, { from: 3, to: 5 });
    ok(afternoon - dawn > 1.5, `${room}: afternoon ${afternoon}, dawn ${dawn}`);
  }
});

Deno.test("humidity moves against temperature", () => {
  const rows = run({ room: "living_room", days: 7 });
  const t = rows.map(({ r }) => r.scd30.temperature);
  const h = rows.map(({ r }) => r.scd30.humidity);
  const mt = mean(t);
  const mh = mean(h);
  let cov = 0, vt = 0, vh = 0;
  for (let i = 0; i < t.length; i++) {
    cov += (t[i] - mt) * (h[i] - mh);
    vt += (t[i] - mt) ** 2;
    vh += (h[i] - mh) ** 2;
  }
  const correlation = cov / Math.sqrt(vt * vh);
  ok(correlation < -0.5, `correlation ${correlation}`);
});

Deno.test("pressure drifts around 1013 hPa with the weather, the same weather for a whole fleet", () => {
  const a = run({ room: "bedroom", days: 10, stepMin: 60 }).map(({ r }) => r.bmp280.pressure);
  const b = run({ room: "office", days: 10, stepMin: 60 }).map(({ r }) => r.bmp280.pressure);
  ok(Math.abs(mean(a) - 1013) < 8, `mean ${mean(a)}`);
  ok(Math.max(...a) - Math.min(...a) > 8, "the weather moves pressure by several hPa");
  for (let i = 0; i < a.length; i++) {
    ok(Math.abs(a[i] - b[i]) < 1.5, `hour ${i}: ${a[i]} vs ${b[i]}`);
  }
});

Deno.test("the same seed replays the same readings and another seed gives other ones", () => {
  const first = run({ room: "kitchen", seed: "s-42", days: 1 });
  const again = run({ room: "kitchen", seed: "s-42", days: 1 });
  const other = run({ room: "kitchen", seed: "s-43", days: 1 });
  assertEquals(first, again);
  notDeepStrictEqual(first.map(({ r }) => r), other.map(({ r }) => r));
});

Deno.test("DeviceModel starts warmed up: a bedroom first read at 5:00 already shows the night's CO2", () => {
  const start = new Date(2026, 10, 24, 5, 0).getTime();
  const model = new DeviceModel({ room: "bedroom", seed: "warm", deviceKey: "d", startMs: start });
  const co2 = model.read(start).scd30.co2;
  ok(co2 > 1200, `co2 ${co2}`);
});

Deno.test("DeviceModel survives long gaps and time running backwards without leaving its ranges", () => {
  const model = new DeviceModel({ room: "office", seed: "gap", deviceKey: "d", startMs: MONDAY });
  const readings = [
    model.read(MONDAY + 30 * 24 * HOUR),
    model.read(MONDAY),
    model.read(MONDAY + 30 * 24 * HOUR + 1),
  ];
  for (const r of readings) {
    ok(r.scd30.co2 >= 400 && r.scd30.co2 <= 2000);
    ok(Number.isFinite(r.bmp280.pressure));
  }
});
