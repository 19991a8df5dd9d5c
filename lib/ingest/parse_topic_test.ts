import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import { parseTopic, toSensorType } from "./parse_topic.ts";

function throwsRange(topic: string, includes: string) {
  assertThrows(() => parseTopic(topic), (err: unknown) => {
    if (!(err instanceof RangeError)) return false;
    return err.message.startsWith(`Cannot parse topic ${JSON.stringify(topic)}:`) &&
      err.message.includes(includes);
  });
}

Deno.test("parseTopic() reads the four topics of the MQTT contract", () => {
  assertEquals(parseTopic("devices/esp32-01/capabilities"), {
    device: "esp32-01",
    kind: "capabilities",
  });
  assertEquals(parseTopic("devices/esp32-01/status"), { device: "esp32-01", kind: "status" });
  assertEquals(parseTopic("devices/esp32-01/error"), { device: "esp32-01", kind: "error" });
  assertEquals(parseTopic("devices/esp32-01/sensors/scd30/data"), {
    device: "esp32-01",
    kind: "data",
    sensorType: "scd30",
  });
});

Deno.test("parseTopic() keeps the device id's case and lower-cases the sensor type", () => {
  assertEquals(parseTopic("devices/Kitchen_1/sensors/SCD30/data"), {
    device: "Kitchen_1",
    kind: "data",
    sensorType: "scd30",
  });
});

Deno.test("parseTopic() maps a dash in the sensor type to an underscore", () => {
  assertEquals(parseTopic("devices/d1/sensors/bme-680/data").sensorType, "bme_680");
});

Deno.test("parseTopic() rejects topics outside devices/ with the expected shapes", () => {
  throwsRange("x/y", "expected devices/{device}/");
  throwsRange("devices/d1", "expected devices/{device}/");
  throwsRange("devices/d1/telemetry", "expected devices/{device}/");
  throwsRange("devices/d1/sensors/scd30", "expected devices/{device}/");
  throwsRange("devices/d1/sensors/scd30/data/extra", "expected devices/{device}/");
  throwsRange("devices/d1/status/", "expected devices/{device}/");
  throwsRange("sensors/d1/status", "expected devices/{device}/");
});

Deno.test("parseTopic() rejects a device id with a space, a dot or too many characters", () => {
  throwsRange("devices/a b/status", `device id "a b" must match`);
  throwsRange("devices/a.b/status", `device id "a.b" must match`);
  throwsRange("devices//status", `device id "" must match`);
  throwsRange(`devices/${"d".repeat(65)}/status`, "must match [A-Za-z0-9_-]{1,64}");
  parseTopic(`devices/${"d".repeat(64)}/status`);
});

Deno.test("parseTopic() rejects hostile sensor types before they can name a table", () => {
  throwsRange(`devices/d1/sensors/x";drop table devices;--/data`, "sensor type");
  throwsRange("devices/d1/sensors/scd30 /data", "sensor type");
  throwsRange("devices/d1/sensors/680x/data", "must start with a letter or underscore");
  throwsRange(`devices/d1/sensors/${"t".repeat(51)}/data`, "longer than 50 characters");
  assertEquals(parseTopic(`devices/d1/sensors/${"t".repeat(50)}/data`).sensorType, "t".repeat(50));
});

Deno.test("parseTopic() shows control characters of a bad topic escaped and long ones cut", () => {
  assertThrows(
    () => parseTopic("devices/a\u0000b/status"),
    (err: unknown) => err instanceof RangeError && err.message.includes(String.raw`a\u0000b`),
  );
  assertThrows(
    () => parseTopic("x".repeat(10_000)),
    (err: unknown) => err instanceof RangeError && err.message.length < 400,
  );
});

Deno.test("toSensorType() explains why a type cannot be a table name", () => {
  assertEquals(toSensorType("BMP280"), "bmp280");
  assertThrows(() => toSensorType("9dof"), /must start with a letter or underscore/);
  assertThrows(() => toSensorType("a/b"), /must match/);
});
