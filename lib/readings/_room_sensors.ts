import {
  type Catalog,
  hasRollups,
  listChoices,
  type SensorInfo,
  sensorMetrics,
  sensorsAtLocation,
  sensorsOfDevice,
} from "./_catalog.ts";
import { type CachedCatalog, cachedCatalog } from "./_cached_catalog.ts";
import { ReadingsError } from "./readings_error.ts";
import type { Queryable } from "../db/mod.ts";

/** Which sensors an answer about a place covers. */
export interface PlaceFilter {
  /** A room or placement (see `sensorsAtLocation`). */
  location?: string;
  /** A device id or name. */
  device?: string;
}

/** One metric of a place and the sensor chosen to speak for it. */
export interface ChosenMetric {
  metric: string;
  unit: string | null;
  sensor: SensorInfo;
}

/**
 * The sensors of a place, and for each metric they report the one sensor that speaks for it: a
 * sensor that also reports humidity wins for temperature (its air is the one the humidity and
 * dew point describe: the SCD30, not the BMP280 beside it), then the lowest sensor id. Only
 * sensors whose tables keep rollups take part.
 *
 * @throws {ReadingsError} for an unknown place, or one without sensors reporting anything.
 */
export function sensorsOfPlace(catalog: Catalog, filter: PlaceFilter): {
  sensors: SensorInfo[];
  metrics: ChosenMetric[];
} {
  let sensors = catalog.sensors;
  if (filter.device?.trim()) sensors = sensorsOfDevice(sensors, filter.device);
  if (filter.location?.trim()) sensors = sensorsAtLocation(sensors, filter.location);
  if (!filter.device?.trim() && !filter.location?.trim()) {
    throw new ReadingsError('Give a location (a room, e.g. "bedroom") or a device.');
  }
  sensors = sensors.filter((s) => hasRollups(catalog, s.sensorType));
  const byMetric = new Map<string, SensorInfo[]>();
  for (const s of sensors) {
    for (const m of sensorMetrics(catalog, s)) byMetric.set(m, [...(byMetric.get(m) ?? []), s]);
  }
  if (byMetric.size === 0) {
    throw new ReadingsError(
      `No readings yet from ${listChoices(sensors.map((s) => `sensor ${s.sensorId}`))}`,
    );
  }
  const metrics: ChosenMetric[] = [];
  for (const [metric, list] of [...byMetric].sort(([a], [b]) => a.localeCompare(b))) {
    const score = (s: SensorInfo) => sensorMetrics(catalog, s).includes("humidity") ? 0 : 1;
    const [sensor] = [...list].sort((a, b) => score(a) - score(b) || a.sensorId - b.sensorId);
    metrics.push({
      metric,
      unit: catalog.units.get(`${sensor.sensorType}/${metric}`) ?? null,
      sensor,
    });
  }
  const used = new Set(metrics.map((m) => m.sensor.sensorId));
  const chosen = sensors.filter((s) => used.has(s.sensorId));
  return { sensors: chosen.sort((a, b) => a.sensorId - b.sensorId), metrics };
}

/**
 * `sensorsOfPlace` on the cached catalog (see `cachedCatalog`), read afresh once when the cached
 * one does not know the place or its sensors (a new device or room), or, given `metric`, when
 * none of its sensors has reported that metric yet.
 *
 * @throws {ReadingsError} as `sensorsOfPlace` does, from the fresh catalog.
 */
export async function placeSensors(
  db: Queryable,
  filter: PlaceFilter & { metric?: string },
): Promise<{ catalog: CachedCatalog; sensors: SensorInfo[]; metrics: ChosenMetric[] }> {
  const catalog = await cachedCatalog(db);
  try {
    const place = sensorsOfPlace(catalog, filter);
    if (
      catalog.fresh || filter.metric === undefined ||
      place.metrics.some((m) => m.metric === filter.metric)
    ) return { catalog, ...place };
  } catch (error) {
    if (!(error instanceof ReadingsError) || catalog.fresh) throw error;
  }
  const fresh = await cachedCatalog(db, { fresh: true });
  return { catalog: fresh, ...sensorsOfPlace(fresh, filter) };
}
