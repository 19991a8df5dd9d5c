import { deepStrictEqual as assertEquals, ok as assert, rejects } from "node:assert/strict";
import { withTestDb } from "../lib/db/testing.ts";
import { airSummary, compareAir, dailyProfile, dataQuality } from "../lib/readings/mod.ts";
import { AIR_T0, seedAir } from "./fixtures/air_seed.ts";

const at = (hhmm: string) => new Date(`2024-01-01T${hhmm}:00Z`);
const close = (a: number, b: number, what: string) =>
  assert(Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b)), `${what}: ${a} ≠ ${b}`);
/** Dew point in °C (Magnus, b = 17.62, c = 243.12 °C), computed here independently. */
const dewPoint = (t: number, rh: number) => {
  const g = Math.log(rh / 100) + 17.62 * t / (243.12 + t);
  return 243.12 * g / (17.62 - g);
};

Deno.test("airSummary(), compareAir(), dailyProfile() and dataQuality() match hand-computed answers", async (t) => {
  await using db = await withTestDb();
  await seedAir(db);

  await t.step("summary of the bedroom over three hours", async () => {
    const s = await airSummary(db, { location: "Bedroom", start: AIR_T0, end: at("03:00") });
    assertEquals([s.start, s.end, s.periodMinutes], [AIR_T0, at("03:00"), 180]);
    assertEquals(s.sensors.map((x) => [x.sensorId, x.placement]), [
      [1, "bedside table"],
      [2, "wardrobe shelf"],
    ]);
    const m = Object.fromEntries(s.metrics.map((x) => [x.metric, x]));
    assertEquals(Object.keys(m), ["co2", "humidity", "pressure", "temperature"]);
    assertEquals([m.co2.sensorId, m.co2.unit, m.co2.min, m.co2.max, m.co2.readings], [
      1,
      "ppm",
      800,
      1500,
      360,
    ]);
    close(m.co2.avg, (800 * 120 + 1200 * 120 + 1500 * 60 + 900 * 60) / 360, "co2 avg");
    assertEquals(m.co2.above, { "1000": 90, "1400": 30 });
    // temperature from the SCD30 (it measures humidity too), not the BMP280 beside it
    assertEquals([m.temperature.sensorId, m.temperature.avg], [1, 21]);
    assertEquals(m.temperature.band, { low: 19, high: 23, below: 60, within: 60, above: 60 });
    assertEquals(m.humidity.band, { low: 40, high: 60, below: 0, within: 180, above: 0 });
    assertEquals([m.pressure.sensorId, m.pressure.unit, m.pressure.min], [2, "hPa", 1000]);
    close(m.pressure.max, 1001.79, "pressure max");
    close(m.pressure.avg, 1000.895, "pressure avg");
    assert(s.dewPoint);
    assertEquals([s.dewPoint.sensorId, s.dewPoint.unit], [1, "°C"]);
    close(s.dewPoint.min, dewPoint(18, 50), "dew point min");
    close(s.dewPoint.max, dewPoint(24, 50), "dew point max");
    close(
      s.dewPoint.avg,
      (dewPoint(18, 50) + dewPoint(21, 50) + dewPoint(24, 50)) / 3,
      "dew point avg",
    );
  });

  await t.step("a period with uneven edges is rounded to minutes and counted exactly", async () => {
    const s = await airSummary(db, {
      location: "bedside table",
      start: new Date("2024-01-01T00:30:10Z"),
      end: at("02:45"),
    });
    assertEquals([s.start, s.end], [at("00:30"), at("02:45")]);
    const co2 = s.metrics.find((x) => x.metric === "co2")!;
    assertEquals([co2.minutes, co2.readings, co2.above], [135, 270, { "1000": 90, "1400": 30 }]);
    assertEquals(s.sensors.map((x) => x.sensorId), [1]);
  });

  await t.step("two rooms compared over the same period", async () => {
    const c = await compareAir(
      db,
      { location: "bedroom", start: AIR_T0, end: at("03:00") },
      { location: "office", start: AIR_T0, end: at("03:00") },
    );
    const co2 = c.differences.find((d) => d.metric === "co2")!;
    const office = (600 * 240 + 20000) / 241;
    close(co2.avg, office - 384000 / 360, "co2 difference");
    assertEquals([co2.min, co2.max, co2.unit], [600 - 800, 20000 - 1500, "ppm"]);
    // office: only minute 02:10 averages above 1000 ppm (600, 20000, 600)
    assertEquals(co2.minutesOutside, { above_1000: 1 - 90, above_1400: 1 - 30 });
    assertEquals(c.differences.map((d) => d.metric), ["co2", "humidity", "temperature"]);
  });

  await t.step("typical day by hour, in UTC and in Berlin time", async () => {
    const utc = await dailyProfile(db, {
      location: "bedroom",
      metric: "co2",
      start: AIR_T0,
      end: at("03:00"),
    });
    assertEquals(utc.hours.map((h) => [h.hour, h.avg, h.readings, h.days]), [
      [0, 800, 120, 1],
      [1, 1200, 120, 1],
      [2, 1200, 120, 1],
    ]);
    const berlin = await dailyProfile(db, {
      location: "bedroom",
      metric: "co2",
      start: AIR_T0,
      end: at("03:00"),
      timezone: "Europe/Berlin",
    });
    assertEquals(berlin.hours.map((h) => h.hour), [1, 2, 3]);
    await rejects(
      () =>
        dailyProfile(db, {
          location: "bedroom",
          metric: "co2",
          start: AIR_T0,
          end: at("03:00"),
          timezone: "Mars/Olympus'; drop table sensors; --",
        }),
      /Unknown time zone/,
    );
    await rejects(
      () =>
        dailyProfile(db, { device: "bedroom-1", metric: "voc", start: AIR_T0, end: at("03:00") }),
      /No sensor there reports "voc"/,
    );
  });

  await t.step(
    "data quality: gaps, stuck values, jumps, implausible readings, clocks",
    async () => {
      const office = await dataQuality(db, {
        location: "office",
        start: AIR_T0,
        end: at("03:00"),
        now: at("03:00"),
      });
      assertEquals(office.gaps.map((g) => [g.sensorId, g.from, g.to, g.minutes]), [
        [3, at("01:00"), at("02:00"), 60],
      ]);
      assertEquals(office.stuck, []);
      assertEquals(office.jumps.map((j) => [j.sensorId, j.metric, j.time]), [
        [3, "co2", at("02:10")],
        [3, "co2", at("02:11")],
      ]);
      assertEquals(office.implausible.map((i) => [i.sensorId, i.metric, i.hour, i.max]), [
        [3, "co2", at("02:00"), 20000],
      ]);
      assertEquals(office.clocks, []);

      const bedroom = await dataQuality(db, {
        location: "bedroom",
        start: AIR_T0,
        end: at("03:00"),
        now: at("03:00"),
      });
      assertEquals(bedroom.gaps, []);
      assertEquals(bedroom.stuck.map((s) => [s.sensorId, s.metric, s.value, s.hours]), [
        [1, "humidity", 50, 3],
        [2, "temperature", 20, 3],
      ]);
      assertEquals(bedroom.jumps.map((j) => [j.sensorId, j.metric, j.time, j.from, j.to]), [
        [1, "co2", at("02:30"), 1500, 900],
        [1, "temperature", at("01:00"), 18, 21],
        [1, "temperature", at("02:00"), 21, 24],
      ]);

      // A clock four minutes ahead: its newest reading is in the future.
      await db.exec("update sensors set last_seen = '2024-01-01T03:04:00Z' where sensor_id = 3");
      const later = await dataQuality(db, { start: AIR_T0, end: at("03:00"), now: at("03:00") });
      assertEquals(later.clocks.map((c) => [c.deviceId, c.sensorId, c.aheadS]), [[
        "office-1",
        3,
        240,
      ]]);
      // Without a place: every sensor; the gap of the office and the end of nothing else.
      assertEquals(later.gaps.map((g) => g.sensorId), [3]);
    },
  );
});
