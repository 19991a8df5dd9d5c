// Pure curves behind the simulated sensors: who is in a room when, how CO2 builds up and decays,
// the daily temperature cycle, humidity and the weather's pressure drift. Every function depends
// only on its arguments, so the same time and seed always give the same value.
import { hashUnit } from "./_random.ts";

/** CO2 of outdoor air, ppm. */
export const OUTDOOR_CO2 = 420;

/** The room kinds a simulated device can be placed in, in the order a fleet uses them. */
export const ROOM_KINDS = [
  "bedroom",
  "living_room",
  "office",
  "kitchen",
  "kids_room",
  "basement",
] as const;

/** A room a simulated device sits in. */
export type RoomKind = typeof ROOM_KINDS[number];

/** What happens in a room at one moment. */
export interface RoomActivity {
  /** People present. */
  people: number;
  /** CO2 one person adds, m³/h (≈0.015 asleep, ≈0.02 sitting, ≈0.03 cooking). */
  co2PerPerson: number;
  /** Air changes per hour, windows and hood included. */
  airChanges: number;
  /** Extra relative humidity from breathing, cooking or showers, %RH. */
  moisture: number;
}

interface RoomProfile {
  volumeM3: number;
  /** Air changes per hour with windows shut. */
  closedAirChanges: number;
  /** Offset from the home's daily temperature cycle, °C. */
  temperatureOffset: number;
  /** Where the sensors sit, for capabilities metadata. */
  scd30Spot: string;
  bmp280Spot: string;
  activity(hour: number, weekend: boolean): Omit<RoomActivity, "airChanges"> & {
    windowOpen: boolean;
  };
}

const within = (h: number, from: number, to: number) =>
  from <= to ? h >= from && h < to : h >= from || h < to;

const idle = { people: 0, co2PerPerson: 0.02, moisture: 0, windowOpen: false };

const PROFILES: Record<RoomKind, RoomProfile> = {
  bedroom: {
    volumeM3: 30,
    closedAirChanges: 0.7,
    temperatureOffset: -0.8,
    scd30Spot: "bedside table",
    bmp280Spot: "wardrobe shelf",
    activity(h, weekend) {
      const wake = weekend ? 8.5 : 6.75;
      if (within(h, 22.75, wake)) {
        return { people: 2, co2PerPerson: 0.015, moisture: 4, windowOpen: false };
      }
      if (within(h, wake, wake + 0.5)) return { ...idle, windowOpen: true };
      return idle;
    },
  },
  living_room: {
    volumeM3: 60,
    closedAirChanges: 1,
    temperatureOffset: 0.3,
    scd30Spot: "bookshelf",
    bmp280Spot: "tv cabinet",
    activity(h, weekend) {
      if (within(h, 18.5, 22.75)) {
        return { people: 3, co2PerPerson: 0.02, moisture: 2, windowOpen: false };
      }
      if (weekend && within(h, 10, 18.5)) {
        return { people: 2, co2PerPerson: 0.02, moisture: 1, windowOpen: false };
      }
      if (within(h, 8, 8.5)) return { ...idle, windowOpen: true };
      return idle;
    },
  },
  office: {
    volumeM3: 25,
    closedAirChanges: 0.8,
    temperatureOffset: 0.5,
    scd30Spot: "desk",
    bmp280Spot: "window sill",
    activity(h, weekend) {
      if (weekend) return idle;
      if (within(h, 12.5, 13)) return { ...idle, windowOpen: true };
      if (within(h, 9, 12.5) || within(h, 13.5, 17.5)) {
        return { people: 1, co2PerPerson: 0.02, moisture: 1, windowOpen: false };
      }
      return idle;
    },
  },
  kitchen: {
    volumeM3: 35,
    closedAirChanges: 1.5,
    temperatureOffset: 0.4,
    scd30Spot: "fridge top",
    bmp280Spot: "spice rack",
    activity(h) {
      // Meals: the hood runs while cooking, and the steam shows in the humidity.
      if (within(h, 7, 7.75) || within(h, 12, 12.75) || within(h, 18, 19.25)) {
        return { people: 2, co2PerPerson: 0.03, moisture: 9, windowOpen: true };
      }
      return idle;
    },
  },
  kids_room: {
    volumeM3: 20,
    closedAirChanges: 0.8,
    temperatureOffset: 0,
    scd30Spot: "toy shelf",
    bmp280Spot: "desk",
    activity(h, weekend) {
      if (within(h, 20, 7)) {
        return { people: 1, co2PerPerson: 0.012, moisture: 2, windowOpen: false };
      }
      if (within(h, 7, 7.5)) return { ...idle, windowOpen: true };
      if (within(h, weekend ? 9 : 15, 18)) {
        return { people: 2, co2PerPerson: 0.02, moisture: 1, windowOpen: false };
      }
      return idle;
    },
  },
  basement: {
    volumeM3: 50,
    closedAirChanges: 0.5,
    temperatureOffset: -1.5,
    scd30Spot: "workbench",
    bmp280Spot: "fuse box",
    activity(h, weekend) {
      if (weekend && within(h, 14, 16)) {
        return { people: 1, co2PerPerson: 0.025, moisture: 1, windowOpen: false };
      }
      return idle;
    },
  },
};

/** Where in the room the two sensors sit. */
export function sensorSpots(room: RoomKind): { scd30: string; bmp280: string } {
  return { scd30: PROFILES[room].scd30Spot, bmp280: PROFILES[room].bmp280Spot };
}

/** Local hour of day as a fraction (e.g. 13.5 for 13:30) and whether it is Saturday or Sunday. */
export function localHour(at: Date): { hour: number; weekend: boolean } {
  const day = at.getDay();
  return {
    hour: at.getHours() + at.getMinutes() / 60 + at.getSeconds() / 3600,
    weekend: day === 0 || day === 6,
  };
}

/**
 * Who is in `room` at `at` (local time). Each day's schedule shifts by up to ±30 minutes, drawn
 * from the seed and the date, so days differ but a seed replays the same days.
 */
export function roomActivity(room: RoomKind, at: Date, seed: string): RoomActivity {
  const p = PROFILES[room];
  const dayKey = `${at.getFullYear()}-${at.getMonth()}-${at.getDate()}`;
  const shift = hashUnit(`${seed}/${room}/${dayKey}`) - 0.5;
  const { hour, weekend } = localHour(at);
  const h = (hour - shift + 24) % 24;
  const a = p.activity(h, weekend);
  return {
    people: a.people,
    co2PerPerson: a.co2PerPerson,
    moisture: a.moisture,
    airChanges: p.closedAirChanges + (a.windowOpen ? 6 : 0),
  };
}

/**
 * CO2 after `hours` in `room` with constant activity: the well-mixed room model
 * dC/dt = G/V − n·(C − C_out), solved exactly, so any step length is stable.
 */
export function co2After(
  co2: number,
  opts: { room: RoomKind; activity: RoomActivity; hours: number },
): number {
  const { activity: a, hours } = opts;
  const volume = PROFILES[opts.room].volumeM3;
  const n = a.airChanges;
  // ppm per hour that the people add.
  const source = (a.people * a.co2PerPerson / volume) * 1e6;
  const equilibrium = OUTDOOR_CO2 + source / n;
  return equilibrium + (co2 - equilibrium) * Math.exp(-n * hours);
}

/**
 * The home's temperature over a day, °C: coolest before dawn (≈20 °C at 4:00), warmest in the
 * afternoon (≈23 °C at 16:00).
 */
export function dailyTemperature(hour: number): number {
  return 21.5 + 1.5 * Math.cos((2 * Math.PI * (hour - 16)) / 24);
}

/** Temperature in `room`, °C, before sensor noise: the daily cycle, the room and its people. */
export function roomTemperature(
  room: RoomKind,
  opts: { hour: number; people: number; drift: number },
): number {
  const t = dailyTemperature(opts.hour) + PROFILES[room].temperatureOffset +
    0.25 * Math.min(opts.people, 3) + opts.drift;
  return clamp(t, 19, 24);
}

/**
 * Relative humidity, %RH: falls as the air warms (the same water holds less relative humidity)
 * and rises with breathing, cooking and showers. Kept within 35–65 %RH.
 */
export function relativeHumidity(
  temperature: number,
  opts: { moisture: number; drift: number },
): number {
  return clamp(50 - 5 * (temperature - 21.5) + opts.moisture + opts.drift, 35, 65);
}

/**
 * Sea-level pressure, hPa: 1013 hPa plus weather systems passing over days (phases drawn from
 * the seed, so one fleet shares one weather) and the small twice-daily atmospheric tide.
 */
export function weatherPressure(timeMs: number, seed: string): number {
  const days = timeMs / 86_400_000;
  const phase = (k: string) => 2 * Math.PI * hashUnit(`${seed}/pressure/${k}`);
  return 1013.25 +
    9 * Math.sin((2 * Math.PI * days) / 4.3 + phase("front")) +
    4 * Math.sin((2 * Math.PI * days) / 1.7 + phase("trough")) +
    0.6 * Math.sin(4 * Math.PI * days + phase("tide"));
}

/** Limits `value` to [min, max]. */
export function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}
