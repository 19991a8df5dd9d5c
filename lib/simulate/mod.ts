/**
 * The device simulator behind `deno task simulate`: a fleet of simulated ESP32 boards with
 * realistic SCD30/BMP280 curves publishing over MQTT, for demos, tests and load.
 *
 * @module
 */
export { DeviceModel, type DeviceModelOptions, type SensorReadings } from "./device_model.ts";
export { loadSimulateConfig, type ResolvedSimulateConfig } from "./load_simulate_config.ts";
export {
  parseSimulateArgs,
  SIMULATE_USAGE,
  type SimulateArgs,
  UsageError,
} from "./parse_simulate_args.ts";
export {
  type Fleet,
  FleetStartError,
  type FleetStats,
  simulateFleet,
  type SimulateFleetOptions,
} from "./simulate_fleet.ts";
