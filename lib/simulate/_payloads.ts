// The JSON a simulated board publishes, shaped exactly as DESIGN.md's MQTT contract says.
import { type RoomKind, sensorSpots } from "./_curves.ts";
import type { SensorReadings } from "./device_model.ts";

/** Firmware version the simulated boards report. */
export const SIM_FIRMWARE_VERSION = "1.4.2-sim";

/** `devices/{id}/capabilities`. */
export function capabilitiesPayload(
  opts: { deviceId: string; room: RoomKind; intervalS: number },
): string {
  const spots = sensorSpots(opts.room);
  const label = opts.room.replace("_", " ");
  return JSON.stringify({
    device_name: `Simulated ESP32 ${opts.deviceId} (${label})`,
    firmware_version: SIM_FIRMWARE_VERSION,
    device_location: opts.room,
    sensors: ["scd30", "bmp280"],
    metadata: {
      scd30: {
        location: spots.scd30,
        model: "Sensirion SCD30",
        i2c_address: "0x61",
        measurement_interval_s: opts.intervalS,
      },
      bmp280: {
        location: spots.bmp280,
        model: "Bosch BMP280",
        i2c_address: "0x76",
        measurement_interval_s: opts.intervalS,
      },
    },
  });
}

/** `devices/{id}/sensors/{type}/data` for each sensor of one round of readings. */
export function dataPayloads(
  readings: SensorReadings,
  timestamp: number,
): { scd30: string; bmp280: string } {
  const value = (metrics: Record<string, number>) =>
    Object.fromEntries(Object.entries(metrics).map(([k, v]) => [k, { reading: v }]));
  return {
    scd30: JSON.stringify({ timestamp, value: value(readings.scd30) }),
    bmp280: JSON.stringify({ timestamp, value: value(readings.bmp280) }),
  };
}

/** Faults real boards report, per sensor. */
export const SENSOR_FAULTS = {
  scd30: ["CRC mismatch", "measurement not ready", "I2C timeout (no ACK at 0x61)"],
  bmp280: ["chip id mismatch: read 0x00, expected 0x58", "I2C timeout (no ACK at 0x76)"],
} as const;

/** `devices/{id}/error`. */
export function errorPayload(
  opts: { sensor: keyof typeof SENSOR_FAULTS; error: string; timestamp: number },
): string {
  return JSON.stringify({ sensor: opts.sensor, error: opts.error, timestamp: opts.timestamp });
}
