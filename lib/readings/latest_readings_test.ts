import { deepEqual, rejects } from "node:assert/strict";
import { withTestDb } from "../db/testing.ts";
import { latestReadings } from "./latest_readings.ts";

const NOW = new Date("2024-05-01T12:00:00Z");

Deno.test("latestReadings() takes each metric's newest value from whichever layout has it", async () => {
  await using db = await withTestDb();
  deepEqual(await latestReadings(db, { now: NOW }), { sensors: [], readings: [] });
  await db.exec(`
    insert into devices (device_id, device_name, location) values ('d1', 'Desk', 'Study');
    insert into sensors (sensor_id, device_id, sensor_type, location) values
      (1, 'd1', 'scd30', 'Window sill');
    -- columnar until 11:00, then the site switched to the flexible layout only
    insert into scd30_measurements (time, sensor_id, co2, temperature, humidity) values
      ('2024-05-01T10:00:00Z', 1, 500, 20, 40), ('2024-05-01T11:00:00Z', 1, 600, 21, null);
    insert into measurements (time, sensor_id, metric_type, value) values
      ('2024-05-01T11:30:00Z', 1, 'co2', 700), ('2024-05-01T09:00:00Z', 1, 'humidity', 35),
      ('2024-05-01T11:00:00Z', 1, 'temperature', 99);
  `);
  const { readings } = await latestReadings(db, { now: NOW });
  deepEqual(
    readings.map((r) => [r.metric, r.value, r.unit, r.time.toISOString(), r.ageS, r.location]),
    [
      ["co2", 700, "ppm", "2024-05-01T11:30:00.000Z", 1800, "Window sill"],
      // the newest columnar row has no humidity: the row before it has the newest value
      ["humidity", 40, "%RH", "2024-05-01T10:00:00.000Z", 7200, "Window sill"],
      // same time in both layouts: the columnar value wins
      ["temperature", 21, "°C", "2024-05-01T11:00:00.000Z", 3600, "Window sill"],
    ],
  );
  deepEqual((await latestReadings(db, { location: "window" })).readings.length, 3);
  // The device's room finds the sensor as well as the sensor's own placement does.
  deepEqual((await latestReadings(db, { location: "study" })).readings.length, 3);
  await rejects(
    () => latestReadings(db, { location: "Attic" }),
    /Known rooms .*Study \(Window sill\)/,
  );
});
