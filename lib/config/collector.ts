import {
  ConfigError,
  databaseUrl,
  dataDir,
  type Env,
  hostname,
  type MqttSettings,
  mqttSettings,
  num,
  str,
} from "./_fields.ts";

/** Table layouts the collector can write. */
export type StorageLayout = "columnar" | "flexible";

/** Everything `collector.ts` needs, fully resolved. */
export interface ResolvedCollectorConfig {
  /** PostgreSQL connection string; undefined → embedded PGlite (only inside `serve`). */
  databaseUrl: string | undefined;
  mqtt: MqttSettings;
  /** Disk the journal may use while PostgreSQL is away, in bytes. */
  journalMaxBytes: number;
  layouts: StorageLayout[];
  dataDir: string;
  /** Days raw readings are kept (RAW_RETENTION_DAYS); undefined: kept for ever. */
  rawRetentionDays: number | undefined;
}

/**
 * Parses the collector's variables (see docs/architecture.md and README.md), throwing
 * `ConfigError` on a bad value. `opts.role` names the process in the default MQTT client id
 * (`collector`, or `serve` for the collector embedded in the server).
 */
export function loadCollectorConfig(
  env: Env,
  opts: { role?: "collector" | "serve" } = {},
): ResolvedCollectorConfig {
  const layoutsRaw = str(env, "STORAGE_LAYOUTS") ?? "columnar,flexible";
  const layouts = [...new Set(layoutsRaw.split(",").map((s) => s.trim().toLowerCase()))]
    .filter((s) => s !== "");
  for (const l of layouts) {
    if (l !== "columnar" && l !== "flexible") {
      throw new ConfigError(
        "STORAGE_LAYOUTS",
        `must list columnar and/or flexible, got "${layoutsRaw}"`,
      );
    }
  }
  if (layouts.length === 0) {
    throw new ConfigError("STORAGE_LAYOUTS", `must name at least one layout, got "${layoutsRaw}"`);
  }
  return {
    databaseUrl: databaseUrl(env),
    mqtt: mqttSettings(env, hostname(), opts.role),
    journalMaxBytes: num(env, "JOURNAL_MAX_MB", { default: 1024, min: 1 }) * 1024 * 1024,
    layouts: layouts as StorageLayout[],
    dataDir: dataDir(env),
    rawRetentionDays: str(env, "RAW_RETENTION_DAYS") === undefined
      ? undefined
      : num(env, "RAW_RETENTION_DAYS", { default: 0, min: 1, max: 36500 }),
  };
}
