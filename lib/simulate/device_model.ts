import {
  clamp,
  co2After,
  localHour,
  OUTDOOR_CO2,
  relativeHumidity,
  roomActivity,
  type RoomKind,
  roomTemperature,
  weatherPressure,
} from "./_curves.ts";
import { createRandom, hashUnit, type Random } from "./_random.ts";

/** One round of readings of a simulated board, in the units the MQTT contract uses. */
export interface SensorReadings {
  /** Sensirion SCD30: CO2 ppm, °C, %RH. */
  scd30: { co2: number; temperature: number; humidity: number };
  /** Bosch BMP280: hPa and °C (it has no humidity sensor). */
  bmp280: { pressure: number; temperature: number };
}

/** How a simulated device is set up. */
export interface DeviceModelOptions {
  /** The room it sits in; sets occupancy, ventilation and temperature. */
  room: RoomKind;
  /** Seed shared by the fleet: one weather and one set of daily schedules per seed. */
  seed: string;
  /** Distinguishes this device's noise from its neighbours', e.g. its device id. */
  deviceKey: string;
  /** Simulated time of the first reading, epoch milliseconds. */
  startMs: number;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Longest step of the CO2 integration: activity is taken as constant within it. */
const MAX_STEP = 10 * MINUTE;
/** A gap longer than this is not replayed step by step; the room is warmed up afresh. */
const MAX_GAP = 12 * HOUR;

/**
 * The air in one room as an SCD30 and a BMP280 see it. Readings follow the room's day: CO2 builds
 * up while people are in (nights in a bedroom, office hours in an office) and decays when a window
 * opens; temperature follows a 19–24 °C daily cycle; humidity moves against temperature; pressure
 * follows the fleet's weather. The same options and the same sequence of times give the same
 * readings.
 */
export class DeviceModel {
  readonly room: RoomKind;
  #seed: string;
  #rng: Random;
  #lastMs: number;
  #co2 = OUTDOOR_CO2;
  #temperatureDrift = 0;
  #humidityDrift = 0;
  /** Each BMP280 is calibrated slightly differently. */
  #pressureOffset: number;

  constructor(opts: DeviceModelOptions) {
    this.room = opts.room;
    this.#seed = opts.seed;
    this.#rng = createRandom(`${opts.seed}/${opts.deviceKey}`);
    this.#pressureOffset = (hashUnit(`${opts.seed}/${opts.deviceKey}/p`) - 0.5) * 1.2;
    this.#temperatureDrift = this.#rng.normal() * 0.3;
    this.#humidityDrift = this.#rng.normal() * 2;
    this.#lastMs = opts.startMs - MAX_GAP;
    this.#advance(opts.startMs);
  }

  /** The readings at simulated time `atMs` (epoch ms); times before the last reading count as it. */
  read(atMs: number): SensorReadings {
    this.#advance(atMs);
    const at = new Date(this.#lastMs);
    const activity = roomActivity(this.room, at, this.#seed);
    const { hour } = localHour(at);
    const temperature = roomTemperature(this.room, {
      hour,
      people: activity.people,
      drift: this.#temperatureDrift,
    });
    const humidity = relativeHumidity(temperature, {
      moisture: activity.moisture,
      drift: this.#humidityDrift,
    });
    const noise = (sd: number) => this.#rng.normal() * sd;
    const pressure = weatherPressure(this.#lastMs, this.#seed) + this.#pressureOffset;
    return {
      scd30: {
        co2: round(clamp(this.#co2 + noise(8), 400, 2000), 1),
        temperature: round(clamp(temperature + noise(0.05), 19, 24), 2),
        humidity: round(clamp(humidity + noise(0.3), 35, 65), 1),
      },
      bmp280: {
        pressure: round(pressure + noise(0.05), 2),
        // The BMP280 sits on the board next to the ESP32 and reads a little warm.
        temperature: round(clamp(temperature + 0.3 + noise(0.05), 19, 24), 2),
      },
    };
  }

  #advance(atMs: number): void {
    if (atMs <= this.#lastMs) return;
    let t = Math.max(this.#lastMs, atMs - MAX_GAP);
    if (t > this.#lastMs) this.#co2 = OUTDOOR_CO2;
    const elapsedHours = (atMs - this.#lastMs) / HOUR;
    while (t < atMs) {
      const step = Math.min(MAX_STEP, atMs - t);
      const activity = roomActivity(this.room, new Date(t + step / 2), this.#seed);
      this.#co2 = co2After(this.#co2, { room: this.room, activity, hours: step / HOUR });
      t += step;
    }
    // Slow wandering (Ornstein-Uhlenbeck): weather, heating and doors the schedule does not know.
    this.#temperatureDrift = wander(this.#rng, this.#temperatureDrift, {
      hours: elapsedHours,
      tauHours: 3,
      sd: 0.3,
    });
    this.#humidityDrift = wander(this.#rng, this.#humidityDrift, {
      hours: elapsedHours,
      tauHours: 6,
      sd: 2.5,
    });
    this.#lastMs = atMs;
  }
}

function wander(rng: Random, x: number, opts: { hours: number; tauHours: number; sd: number }) {
  const keep = Math.exp(-opts.hours / opts.tauHours);
  return x * keep + opts.sd * Math.sqrt(1 - keep * keep) * rng.normal();
}

function round(value: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
