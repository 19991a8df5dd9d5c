import { type Db, isInvalidParameterValue } from "../db/mod.ts";
import { within } from "./_within.ts";
import { roundPeriod } from "./_period.ts";
import type { SensorInfo } from "./_catalog.ts";
import { type PlaceFilter, placeSensors } from "./_room_sensors.ts";
import { ReadingsError } from "./readings_error.ts";

/** Options of `dailyProfile`. */
export interface DailyProfileOptions extends PlaceFilter {
  metric: string;
  start: Date;
  end: Date;
  /** IANA time zone the hours of the day are in (default "UTC"). */
  timezone?: string;
  /** Cancel the statement after this long, rejecting with `QueryTimeout`; default no limit. */
  timeoutMs?: number;
}

/** One hour of the typical day. */
export interface ProfileHour {
  /** 0–23, local to the profile's time zone. */
  hour: number;
  avg: number;
  min: number;
  max: number;
  readings: number;
  /** Days of the period with readings in this hour. */
  days: number;
}

/** The typical day of one metric in one place. */
export interface DailyProfile {
  metric: string;
  unit: string | null;
  sensor: SensorInfo;
  timezone: string;
  /** Start of the period, rounded down to the hour. */
  start: Date;
  /** End of the period (excluded), rounded up to the hour. */
  end: Date;
  /** Hours of the day with readings, in order (an hour without any is absent). */
  hours: ProfileHour[];
}

const HOUR = 3_600_000;

/**
 * Hour-of-day averages (with min, max and the number of days behind each) of one metric in one
 * place over a period, from `rollup_1h`: exact averages of every reading in that hour of the day.
 * In a time zone whose offset is not whole hours, an hour of the day is the UTC hour that starts
 * in it.
 *
 * @throws {ReadingsError} for an unknown place, metric or time zone.
 */
export async function dailyProfile(db: Db, opts: DailyProfileOptions): Promise<DailyProfile> {
  const timezone = checkTimezone(opts.timezone ?? "UTC");
  const { start, end } = roundPeriod(opts.start, opts.end, HOUR);
  const metric = opts.metric.trim().toLowerCase();
  const place = await placeSensors(db, { location: opts.location, device: opts.device, metric });
  const chosen = place.metrics.find((m) => m.metric === metric);
  if (!chosen) {
    const choices = place.metrics.map((m) => m.metric);
    throw new ReadingsError(
      `No sensor there reports "${opts.metric}". Its metrics: ${choices.join(", ")}`,
      choices,
    );
  }
  const id = chosen.sensor.sensorId;
  let rows;
  try {
    rows = await within(db, opts.timeoutMs, (q) =>
      q.sql<
        { hour: number; avg: number; min: number; max: number; n: number; days: number }
      >`
      with lay as (
        select coalesce((select 'columnar' from rollup_1h
                         where sensor_id = ${id} and metric = ${metric} and layout = 'columnar'
                           and bucket >= ${new Date(start)} and bucket < ${new Date(end)}
                         limit 1), 'flexible') as layout
      )
      select extract(hour from r.bucket at time zone ${timezone})::int as hour,
             sum(r.sum) / sum(r.count) as avg, min(r.min) as min, max(r.max) as max,
             sum(r.count) as n, count(distinct (r.bucket at time zone ${timezone})::date) as days
      from rollup_1h r, lay
      where r.sensor_id = ${id} and r.metric = ${metric} and r.layout = lay.layout
        and r.bucket >= ${new Date(start)} and r.bucket < ${new Date(end)}
      group by 1 order by 1`);
  } catch (error) {
    // PostgreSQL does not know the time zone.
    if (isInvalidParameterValue(error)) {
      throw new ReadingsError(`Unknown time zone "${timezone}"`, [], { cause: error });
    }
    throw error;
  }
  return {
    metric,
    unit: chosen.unit,
    sensor: chosen.sensor,
    timezone,
    start: new Date(start),
    end: new Date(end),
    hours: rows.map((r) => ({
      hour: Number(r.hour),
      avg: Number(r.avg),
      min: Number(r.min),
      max: Number(r.max),
      readings: Number(r.n),
      days: Number(r.days),
    })),
  };
}

/** An IANA time zone name, checked before it reaches SQL. */
function checkTimezone(tz: string): string {
  const name = tz.trim();
  let known = /^[A-Za-z][A-Za-z0-9_+\-/]{0,63}$/.test(name);
  if (known) {
    try {
      new Intl.DateTimeFormat("en", { timeZone: name });
    } catch {
      known = false;
    }
  }
  if (!known) {
    throw new ReadingsError(
      `Unknown time zone "${tz}": give an IANA name such as "Europe/Berlin" or "UTC"`,
    );
  }
  return name;
}
