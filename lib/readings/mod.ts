/**
 * Answers without SQL: the newest readings, downsampled histories, sensor details and the schema
 * description, plus the natural time inputs the MCP tools accept.
 *
 * @module
 */
export type { SensorInfo } from "./_catalog.ts";
export { type Catalog, knownPlaces, loadCatalog, placeKey, sensorMetrics } from "./_catalog.ts";
export {
  coarsestSource,
  type HistorySource,
  planSources,
  ROLLUPS,
  type SourcePiece,
} from "./plan_sources.ts";
export { type Retention, type RetentionOptions, startRetention } from "./start_retention.ts";
export { type TrimmedTable, type TrimOptions, trimRawReadings } from "./trim_raw_readings.ts";
export { type Bucket, BUCKET_ORIGIN, bucketCount, chooseBucket } from "./choose_bucket.ts";
export {
  AIR_THRESHOLDS,
  type AirSummary,
  airSummary,
  type AirSummaryOptions,
  type BandMinutes,
  type MetricSummary,
} from "./air_summary.ts";
export {
  type AirComparison,
  compareAir,
  type CompareSide,
  type MetricDifference,
} from "./compare_air.ts";
export {
  type DailyProfile,
  dailyProfile,
  type DailyProfileOptions,
  type ProfileHour,
} from "./daily_profile.ts";
export {
  type ClockFinding,
  type DataQuality,
  dataQuality,
  type DataQualityOptions,
  type Gap,
  type Implausible,
  type Jump,
  QUALITY_LIMITS,
  type Stuck,
} from "./data_quality.ts";
export { describeSchema } from "./describe_schema.ts";
export { formatAge } from "./format_age.ts";
export { formatValue } from "./format_value.ts";
export {
  type LatestReading,
  latestReadings,
  type LatestReadingsOptions,
  type LatestReadingsResult,
} from "./latest_readings.ts";
export { parseTime, TIME_FORMS } from "./parse_time.ts";
export { ReadingsError } from "./readings_error.ts";
export { type SensorDetails, sensorDetails } from "./sensor_details.ts";
export {
  type HistoryPoint,
  type SensorHistory,
  sensorHistory,
  type SensorHistoryOptions,
} from "./sensor_history.ts";
