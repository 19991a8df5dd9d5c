/**
 * Configuration: one loader per entrypoint, each returning a fully resolved, typed config, and
 * `loadEnv` for the `.env` file (or `ENV_FILE`) every entrypoint reads first.
 *
 * @module
 */
export { ConfigError, type Env, redact } from "./_fields.ts";
export {
  loadCollectorConfig,
  type ResolvedCollectorConfig,
  type StorageLayout,
} from "./collector.ts";
export { loadMonitorConfig, type PushoverSettings, type ResolvedMonitorConfig } from "./monitor.ts";
export {
  isLoopback,
  loadServeConfig,
  type ResolvedServeConfig,
  type SandboxEngineName,
} from "./serve.ts";
export type { MqttSettings } from "./_fields.ts";
export {
  configErrorText,
  type LoadedEnv,
  loadEnv,
  loadSettings,
  type Settings,
} from "./load_env.ts";
