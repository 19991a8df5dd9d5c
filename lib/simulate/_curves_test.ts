import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  co2After,
  dailyTemperature,
  OUTDOOR_CO2,
  relativeHumidity,
  type RoomActivity,
  roomActivity,
} from "./_curves.ts";

const empty: RoomActivity = { people: 0, co2PerPerson: 0.02, airChanges: 1, moisture: 0 };
const two: RoomActivity = { people: 2, co2PerPerson: 0.015, airChanges: 0.7, moisture: 4 };

Deno.test("co2After() decays towards outdoor air in an empty room and rises with people in it", () => {
  const aired = co2After(1800, { room: "bedroom", activity: empty, hours: 3 });
  ok(aired < 520 && aired > OUTDOOR_CO2, `aired ${aired}`);
  const slept = co2After(OUTDOOR_CO2, { room: "bedroom", activity: two, hours: 6 });
  ok(slept > 1500, `slept ${slept}`);
});

Deno.test("co2After() gives the same result for one long step as for many short ones", () => {
  const once = co2After(500, { room: "office", activity: two, hours: 2 });
  let stepped = 500;
  for (let i = 0; i < 120; i++) {
    stepped = co2After(stepped, { room: "office", activity: two, hours: 1 / 60 });
  }
  ok(Math.abs(once - stepped) < 1e-6, `${once} vs ${stepped}`);
});

Deno.test("dailyTemperature() spans about 20 to 23 °C, coolest at 4:00 and warmest at 16:00", () => {
  assertEquals(Math.round(dailyTemperature(4) * 10) / 10, 20);
  assertEquals(Math.round(dailyTemperature(16) * 10) / 10, 23);
  for (let h = 0; h < 24; h += 0.5) {
    ok(dailyTemperature(h) >= dailyTemperature(4) && dailyTemperature(h) <= dailyTemperature(16));
  }
});

Deno.test("relativeHumidity() falls as temperature rises and stays within 35–65 %RH", () => {
  const cool = relativeHumidity(19.5, { moisture: 0, drift: 0 });
  const warm = relativeHumidity(23.5, { moisture: 0, drift: 0 });
  ok(cool > warm, `${cool} vs ${warm}`);
  assertEquals(relativeHumidity(19, { moisture: 30, drift: 5 }), 65);
  assertEquals(relativeHumidity(24, { moisture: 0, drift: -20 }), 35);
});

Deno.test("roomActivity() follows the room's schedule and shifts it from day to day by the seed", () => {
  const weekdayNight = new Date(2026, 10, 24, 3, 0);
  const weekdayNoon = new Date(2026, 10, 24, 15, 0);
  assertEquals(roomActivity("bedroom", weekdayNight, "s").people, 2);
  assertEquals(roomActivity("bedroom", weekdayNoon, "s").people, 0);
  assertEquals(roomActivity("office", weekdayNoon, "s").people, 1);
  assertEquals(roomActivity("office", new Date(2026, 10, 28, 15, 0), "s").people, 0); // Saturday
  // Around the edge of a schedule (bed at ~22:45 ± 30 min) the seed decides.
  const edges = new Set<number>();
  for (let s = 0; s < 20; s++) {
    edges.add(roomActivity("bedroom", new Date(2026, 10, 24, 22, 45), `seed-${s}`).people);
  }
  assertEquals([...edges].sort(), [0, 2]);
});
