import { deepEqual, equal, rejects } from "node:assert/strict";
import { withTestDb } from "../db/testing.ts";
import { sensorHistory } from "./sensor_history.ts";
import { ReadingsError } from "./readings_error.ts";

Deno.test("sensorHistory() reads the columnar layout for a period it covers, else the flexible one", async () => {
  await using db = await withTestDb();
  const day = (d: number) => new Date(Date.UTC(2024, 4, d));
  await rejects(
    () =>
      sensorHistory(db, { sensorId: 1, metric: "co2", start: day(1), end: day(2), maxPoints: 5 }),
    /Unknown sensor_id 1. Known sensors: \(none\)/,
  );
  await db.exec(`
    insert into devices (device_id) values ('d1');
    insert into sensors (sensor_id, device_id, sensor_type) values (1, 'd1', 'scd30');
    -- columnar on day 1 only; flexible on days 1 and 2 with different values on day 1
    insert into scd30_measurements (time, sensor_id, co2)
      select timestamptz '2024-05-01T00:00:00Z' + g * interval '1 minute', 1, 400 + g % 60
      from generate_series(0, 1439) g;
    insert into measurements (time, sensor_id, metric_type, value)
      select timestamptz '2024-05-01T00:00:00Z' + g * interval '1 minute', 1, 'co2', 9999
      from generate_series(0, 2879) g;
  `);
  const one = await sensorHistory(db, {
    sensorId: 1,
    metric: "co2",
    start: day(1),
    end: day(2),
    maxPoints: 24,
  });
  equal(one.layout, "columnar");
  equal(one.bucket.label, "1h");
  equal(one.points.length, 24);
  deepEqual(one.points[0], { time: day(1), avg: 429.5, min: 400, max: 459, count: 60 });
  const two = await sensorHistory(db, {
    sensorId: 1,
    metric: "CO2",
    start: day(2),
    end: day(3),
    maxPoints: 1,
  });
  equal(two.layout, "flexible");
  equal(two.bucket.label, "1d");
  deepEqual(two.points.map((p) => [p.count, p.avg]), [[1440, 9999]]);
  await rejects(
    () =>
      sensorHistory(db, { sensorId: 1, metric: "co2", start: day(3), end: day(2), maxPoints: 5 }),
    ReadingsError,
  );
});
