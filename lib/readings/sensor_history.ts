import { type Db, isUndefinedTableOrColumn, type Queryable } from "../db/mod.ts";
import {
  deviceLabel,
  hasRollups,
  listChoices,
  listedMetrics,
  type SensorInfo,
  sensorsOfDevice,
} from "./_catalog.ts";
import {
  coarsestSource,
  type HistorySource,
  planSources,
  type SourcePiece,
} from "./plan_sources.ts";
import { type CachedCatalog, cachedCatalog } from "./_cached_catalog.ts";
import { type Bucket, BUCKET_ORIGIN, chooseBucket } from "./choose_bucket.ts";
import { type HistoryRows, historyRows } from "./_history_rows.ts";
import { ReadingsError } from "./readings_error.ts";

/** One time bucket of a history. */
export interface HistoryPoint {
  /** Start of the bucket. */
  time: Date;
  avg: number;
  min: number;
  max: number;
  /** Readings in the bucket. */
  count: number;
}

/** Options of `sensorHistory`; give `sensorId` or `device` (with `sensorType` when needed). */
export interface SensorHistoryOptions {
  sensorId?: number;
  /** Device id or name, case-insensitive. */
  device?: string;
  /** Picks one sensor of the device when several have the metric (e.g. `scd30`). */
  sensorType?: string;
  metric: string;
  start: Date;
  end: Date;
  /** Upper bound on the number of buckets returned. */
  maxPoints: number;
  /**
   * Cancel the aggregation after this long, rejecting with `QueryTimeout` (see
   * `Db.transaction`); default: no limit.
   */
  timeoutMs?: number;
  /** Use the rollups where they fit (default true); false computes everything from raw rows. */
  rollups?: boolean;
}

/** Most gaps listed; a longer list is cut (the points show the rest). */
export const MAX_GAPS = 1000;

/** A downsampled history of one metric of one sensor. */
export interface SensorHistory {
  sensor: SensorInfo;
  metric: string;
  unit: string | null;
  /** Which table layout the points came from. */
  layout: "columnar" | "flexible";
  bucket: Bucket;
  start: Date;
  end: Date;
  /**
   * The coarsest source the points were computed from: `raw` readings, or the minute, hour or
   * day rollups (with raw readings, or finer rollups, at the period's edges; see `pieces`).
   */
  source: HistorySource;
  /** How the period was covered, in time order. */
  pieces: SourcePiece[];
  /** Buckets of the period without a single reading (a device that was off), in time order. */
  gaps: Date[];
  points: HistoryPoint[];
}

/**
 * Average, minimum, maximum and count of one metric per time bucket from `start` up to, not
 * including, `end`, computed in the database with `date_bin`. The bucket width is the smallest round
 * width that keeps the number of buckets within `maxPoints`. Reads the columnar table when it
 * holds readings of the metric in the range, else the flexible `measurements` table, so it works
 * whichever layouts STORAGE_LAYOUTS enables.
 *
 * One statement does the work: it aggregates the columnar table, falls back to the flexible one
 * only when that found nothing, and reads the sensor's current device, name and location (with
 * rollups, whose catalog entry names the layouts holding the metric, the flexible fallback is a
 * second statement, run only when the columnar table has nothing in the period). The
 * sensor is picked from a cached catalog (see `cachedCatalog`); whatever the cached catalog
 * cannot answer, or answers differently from the database, makes it read the catalog again.
 *
 * @throws {ReadingsError} for an unknown or ambiguous sensor, device or metric, listing the
 * valid choices, or when `start` is not before `end`.
 * @throws {QueryTimeout} when the aggregation runs past `timeoutMs`.
 */
export async function sensorHistory(db: Db, opts: SensorHistoryOptions): Promise<SensorHistory> {
  if (!(opts.start.getTime() < opts.end.getTime())) {
    throw new ReadingsError(
      `The start (${opts.start.toISOString()}) must be before the end (${opts.end.toISOString()})`,
    );
  }
  const metric = opts.metric.trim().toLowerCase();
  const bucket = chooseBucket(opts);
  for (let fresh = false;; fresh = true) {
    const catalog = await cachedCatalog(db, { fresh });
    let target: Target;
    try {
      target = await pickTarget(catalog, opts, metric);
    } catch (error) {
      // Unknown to the cached catalog: the device or table may be new.
      if (error instanceof ReadingsError && !catalog.fresh) continue;
      throw error;
    }
    const { sensor } = target;
    const table = `${sensor.sensorType}_measurements`;
    const horizons = [catalog.horizons.get("measurements"), catalog.horizons.get(table)]
      .filter((d): d is Date => d !== undefined).map((d) => d.getTime());
    const rollups = opts.rollups !== false && hasRollups(catalog, sensor.sensorType);
    // With rollups the catalog knows the layouts holding the metric and how dense its readings
    // are: the columnar table is read alone when it holds the metric, the flexible one only if
    // that finds nothing in the period (a smaller statement, planned faster, for nearly every
    // call); without, one statement reads both.
    const known = rollups ? catalog.layouts.get(`${sensor.sensorId}/${metric}`) : undefined;
    const plan = (layout?: "columnar" | "flexible") =>
      planSources({
        start: opts.start,
        end: opts.end,
        bucketSeconds: bucket.seconds,
        rollups,
        rawFrom: horizons.length > 0 ? new Date(Math.max(...horizons)) : undefined,
        rawPerMinute: layout ? known?.get(layout) : undefined,
      });
    const columnarFirst = target.hasColumn && (known === undefined || known.has("columnar"));
    const read = (o: { columnar: boolean; flexible: boolean; pieces: SourcePiece[] }) => {
      const aggregate = (q: Queryable) =>
        historyRows(q, {
          sensorId: sensor.sensorId,
          table: o.columnar ? table : undefined,
          flexible: o.flexible,
          metric,
          bucket,
          start: opts.start,
          end: opts.end,
          pieces: o.pieces,
        });
      return opts.timeoutMs
        ? db.transaction(aggregate, { timeoutMs: opts.timeoutMs })
        : aggregate(db);
    };
    let pieces = plan(known && columnarFirst ? "columnar" : known ? "flexible" : undefined);
    let row: HistoryRows | undefined;
    try {
      row = await read({
        columnar: columnarFirst,
        flexible: known === undefined || !columnarFirst,
        pieces,
      });
      if (known && columnarFirst && row?.columnar === null && known.has("flexible")) {
        const flexPieces = plan("flexible");
        const flex = await read({ columnar: false, flexible: true, pieces: flexPieces });
        if (flex?.flexible) [row, pieces] = [{ ...flex, columnar: null }, flexPieces];
      }
    } catch (error) {
      // The cached tables changed.
      if (!catalog.fresh && isUndefinedTableOrColumn(error)) continue;
      throw error;
    }
    const current = row !== undefined && row.sensorType === sensor.sensorType &&
      row.deviceId === sensor.deviceId && row.siblings === target.siblings &&
      row.horizon === (horizons.length > 0 ? Math.max(...horizons) : null);
    // the sensor, or its device's sensors, changed; or retention trimmed raw readings since
    if (!current && !catalog.fresh) continue;
    if (row === undefined) {
      throw new ReadingsError(`Unknown sensor_id ${sensor.sensorId}: it was just removed`);
    }
    const layout = row.columnar !== null || (columnarFirst && row.flexible === null)
      ? "columnar"
      : "flexible";
    const points = (layout === "columnar" ? row.columnar : row.flexible) ?? [];
    return {
      sensor: { ...sensor, deviceName: row.deviceName, location: row.location },
      metric,
      unit: target.unit,
      layout,
      bucket,
      start: opts.start,
      end: opts.end,
      source: coarsestSource(pieces),
      pieces,
      gaps: missingBuckets(opts.start, opts.end, bucket.seconds, points),
      points,
    };
  }
}

/** The sensor a history reads, as the catalog describes it. */
interface Target {
  sensor: SensorInfo;
  /** The metric is a column of the sensor type's columnar table. */
  hasColumn: boolean;
  unit: string | null;
  /** Ids of the device's sensors, comma-separated: a new one may make the choice ambiguous. */
  siblings: string;
}

/** Picks the sensor and layout for `metric`, or throws the ReadingsError naming the choices. */
async function pickTarget(
  catalog: CachedCatalog,
  opts: SensorHistoryOptions,
  metric: string,
): Promise<Target> {
  const { sensors, columnar, units } = catalog;
  const candidates = pickCandidates(sensors, opts);
  // With rollups, a sensor's metrics are those it reported (a BMP280 has a humidity column but
  // never measures it); without, every column and `metrics` row of its type.
  const staticMetrics = (s: SensorInfo) =>
    hasRollups(catalog, s.sensorType)
      ? new Set(catalog.reported.get(s.sensorId) ?? [])
      : new Set([...(columnar.get(s.sensorType) ?? []), ...listedMetrics(units, s.sensorType)]);
  // The flexible table can only add metrics: look there only when the tables and the metrics
  // list do not already name the metric for every candidate (one index probe per metric).
  const flexible = candidates.every((s) => staticMetrics(s).has(metric))
    ? new Map<number, string[]>()
    : await catalog.flexibleMetrics(candidates.map((s) => s.sensorId));
  const metricsOf = (s: SensorInfo) =>
    hasRollups(catalog, s.sensorType)
      ? [...staticMetrics(s)].sort()
      : [...new Set([...staticMetrics(s), ...(flexible.get(s.sensorId) ?? [])])].sort();
  const withMetric = candidates.filter((s) => metricsOf(s).includes(metric));
  if (withMetric.length === 0) {
    const choices = [...new Set(candidates.flatMap(metricsOf))].sort();
    const whose = candidates.length === 1
      ? `sensor ${candidates[0].sensorId} (${candidates[0].sensorType} on ${
        deviceLabel(candidates[0])
      })`
      : `device ${deviceLabel(candidates[0])}`;
    throw new ReadingsError(
      `Unknown metric "${opts.metric}" for ${whose}. Its metrics: ${listChoices(choices)}`,
      choices,
    );
  }
  if (withMetric.length > 1) {
    const types = withMetric.map((s) => s.sensorType);
    throw new ReadingsError(
      `Device ${deviceLabel(withMetric[0])} has several sensors measuring "${metric}": ` +
        `${withMetric.map((s) => `${s.sensorType} (sensor_id ${s.sensorId})`).join(", ")}. ` +
        `Pass sensor_type (one of ${types.join(", ")}) or sensor_id.`,
      types,
    );
  }
  const sensor = withMetric[0];
  return {
    sensor,
    hasColumn: columnar.get(sensor.sensorType)?.includes(metric) ?? false,
    unit: units.get(`${sensor.sensorType}/${metric}`) ?? null,
    siblings: sensors.filter((s) => s.deviceId === sensor.deviceId).map((s) => s.sensorId)
      .sort((a, b) => a - b).join(","),
  };
}

function pickCandidates(sensors: SensorInfo[], opts: SensorHistoryOptions): SensorInfo[] {
  if (opts.sensorId !== undefined) {
    const s = sensors.find((x) => x.sensorId === opts.sensorId);
    if (!s) {
      const byId = [...sensors].sort((a, b) => a.sensorId - b.sensorId);
      const choices = byId.map((x) =>
        `${x.sensorId} (${x.sensorType} on ${deviceLabel(x)}${x.location ? `, ${x.location}` : ""})`
      );
      throw new ReadingsError(
        `Unknown sensor_id ${opts.sensorId}. Known sensors: ${listChoices(choices)}`,
        byId.map((x) => String(x.sensorId)),
      );
    }
    return [s];
  }
  if (opts.device === undefined || opts.device.trim() === "") {
    const choices = [...sensors].sort((a, b) => a.sensorId - b.sensorId)
      .map((x) => `${x.sensorId} (${x.sensorType} on ${deviceLabel(x)})`);
    throw new ReadingsError(
      `Give sensor_id, or device (id or name) to pick the sensor. Known sensors: ${
        listChoices(choices)
      }`,
      sensors.map((x) => String(x.sensorId)),
    );
  }
  const ofDevice = sensorsOfDevice(sensors, opts.device);
  if (opts.sensorType === undefined || opts.sensorType.trim() === "") return ofDevice;
  const type = opts.sensorType.trim().toLowerCase();
  const ofType = ofDevice.filter((s) => s.sensorType.toLowerCase() === type);
  if (ofType.length === 0) {
    const types = ofDevice.map((s) => s.sensorType);
    throw new ReadingsError(
      `Device ${deviceLabel(ofDevice[0])} has no "${opts.sensorType}" sensor. ` +
        `Its sensor types: ${listChoices(types)}`,
      types,
    );
  }
  return ofType;
}

/** Start of every bucket of [`start`, `end`) that has no point, at most `MAX_GAPS`. */
function missingBuckets(start: Date, end: Date, seconds: number, points: HistoryPoint[]): Date[] {
  const have = new Set(points.map((p) => p.time.getTime()));
  const w = seconds * 1000;
  const o = BUCKET_ORIGIN.getTime();
  const out: Date[] = [];
  for (let t = o + Math.floor((start.getTime() - o) / w) * w; t < end.getTime(); t += w) {
    if (!have.has(t)) out.push(new Date(t));
    if (out.length >= MAX_GAPS) break;
  }
  return out;
}
