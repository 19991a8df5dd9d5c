import { ConfigError, databaseUrl, type Env, num, str, url } from "./_fields.ts";

/** Pushover credentials; absent means notifications are only logged. */
export interface PushoverSettings {
  user: string;
  token: string;
  apiUrl: string;
}

/** Everything `monitor.ts` needs, fully resolved. */
export interface ResolvedMonitorConfig {
  databaseUrl: string | undefined;
  pushover: PushoverSettings | undefined;
  /** Seconds between checks. */
  checkIntervalS: number;
  /** Seconds without a reading or status after which a device is silent. */
  inactivityThresholdS: number;
  /** Public base URL for links in notifications, when configured. */
  serverUrl: string | undefined;
}

/** Parses the monitor's variables (see DESIGN.md), throwing `ConfigError` on a bad value. */
export function loadMonitorConfig(env: Env): ResolvedMonitorConfig {
  const user = str(env, "PUSHOVER_USER");
  const token = str(env, "PUSHOVER_TOKEN");
  if ((user === undefined) !== (token === undefined)) {
    throw new ConfigError(
      user === undefined ? "PUSHOVER_USER" : "PUSHOVER_TOKEN",
      "must be set together with " + (user === undefined ? "PUSHOVER_TOKEN" : "PUSHOVER_USER"),
    );
  }
  const api = url(env, "PUSHOVER_API_URL", ["https:", "http:"])?.toString() ??
    "https://api.pushover.net";
  return {
    databaseUrl: databaseUrl(env),
    pushover: user && token ? { user, token, apiUrl: api.replace(/\/+$/, "") } : undefined,
    checkIntervalS: num(env, "CHECK_INTERVAL", { default: 60, min: 1 }),
    inactivityThresholdS: num(env, "INACTIVITY_THRESHOLD", { default: 300, min: 1 }),
    serverUrl: url(env, "SERVER_URL", ["http:", "https:"])?.toString().replace(/\/+$/, ""),
  };
}
