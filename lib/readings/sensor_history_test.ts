import { deepEqual, equal, rejects } from "node:assert/strict";
import { withTestDb } from "../db/testing.ts";
import { sensorHistory } from "./sensor_history.ts";
import { ReadingsError } from "./readings_error.ts";

const day = (d: number) => new Date(Date.UTC(2024, 4, d));

Deno.test("sensorHistory() reads the columnar layout for a period it covers, else the flexible one", async () => {
  await using db = await withTestDb();
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

Deno.test("sensorHistory() sees sensors, tables, columns and names changed after an earlier call", async () => {
  await using db = await withTestDb();
  const history = (o: { sensorId?: number; device?: string; metric: string }) =>
    sensorHistory(db, { ...o, start: day(1), end: day(2), maxPoints: 24 });
  await db.exec(`
    insert into devices (device_id, device_name, location) values ('d1', 'Desk', 'Study');
    insert into sensors (sensor_id, device_id, sensor_type) values (1, 'd1', 'scd30');
    insert into scd30_measurements (time, sensor_id, co2, temperature)
      select timestamptz '2024-05-01T00:00:00Z' + g * interval '1 minute', 1, 400 + g % 60, 20
      from generate_series(0, 1439) g;
  `);
  const first = await history({ device: "d1", metric: "temperature" });
  deepEqual([first.sensor.sensorId, first.sensor.deviceName, first.points.length], [1, "Desk", 24]);
  await rejects(() => history({ sensorId: 1, metric: "voc" }), /Unknown metric "voc"/);

  // A new device with a sensor type whose table did not exist yet.
  await db.exec(`
    insert into devices (device_id) values ('d2');
    insert into sensors (sensor_id, device_id, sensor_type) values (2, 'd2', 'sgp30');
    create table sgp30_measurements (
      time timestamptz not null, sensor_id integer not null, tvoc double precision,
      primary key (sensor_id, time));
    insert into sgp30_measurements values ('2024-05-01T06:00:00Z', 2, 120);
  `);
  const tvoc = await history({ sensorId: 2, metric: "tvoc" });
  deepEqual(tvoc.points.map((p) => [p.count, p.avg]), [[1, 120]]);

  // A new metric column, a metric new to the flexible table, a renamed and moved device.
  await db.exec(`
    alter table scd30_measurements add column pm25 double precision;
    insert into scd30_measurements (time, sensor_id, pm25)
      select timestamptz '2024-05-01T00:00:30Z' + g * interval '1 minute', 1, 7
      from generate_series(0, 59) g;
    insert into measurements (time, sensor_id, metric_type, value)
      values ('2024-05-01T02:00:00Z', 1, 'voc', 3);
    update devices set device_name = 'Window desk', location = 'Attic' where device_id = 'd1';
  `);
  const pm25 = await history({ sensorId: 1, metric: "pm25" });
  deepEqual([pm25.layout, pm25.points.map((p) => [p.count, p.avg])], ["columnar", [[60, 7]]]);
  deepEqual([pm25.sensor.deviceName, pm25.sensor.location], ["Window desk", "Attic"]);
  const voc = await history({ sensorId: 1, metric: "voc" });
  deepEqual([voc.layout, voc.points.map((p) => p.count)], ["flexible", [1]]);

  // A second sensor that has measured temperature makes the device alone ambiguous (one that
  // never reported it does not: see tests/air_tools_test.ts).
  await db.exec(`
    insert into sensors (sensor_id, device_id, sensor_type) values (3, 'd1', 'bmp280');
    insert into bmp280_measurements (time, sensor_id, temperature)
      values ('2024-05-01T03:00:00Z', 3, 19);`);
  await rejects(
    () => history({ device: "d1", metric: "temperature" }),
    /several sensors measuring "temperature": bmp280 \(sensor_id 3\), scd30 \(sensor_id 1\)/,
  );

  // A table dropped since: the metric is reported unknown, not as a database error.
  await db.exec("drop table sgp30_measurements");
  await rejects(() => history({ sensorId: 2, metric: "tvoc" }), /Unknown metric "tvoc"/);
});
