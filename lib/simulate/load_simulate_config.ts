import { type Env, loadCollectorConfig, loadServeConfig } from "../config/mod.ts";

/** Everything `simulate.ts` reads from the environment, fully resolved. */
export interface ResolvedSimulateConfig {
  /** Broker the simulated devices publish to. */
  mqttUrl: string;
  /** True when no `MQTT_URL`/`MQTT_BROKER` was set and the embedded broker's address is assumed. */
  mqttUrlDefaulted: boolean;
  /** Where `mqttUrl` came from: `MQTT_URL`, `MQTT_BROKER`, the server's broker file, `MQTT_LISTEN`. */
  mqttUrlFrom: string;
  username: string | undefined;
  password: string | undefined;
}

/** Options of `loadSimulateConfig`. */
export interface LoadSimulateConfigOptions {
  /** The embedded broker a running `deno task serve` announced in `DATA_DIR/broker.json`. */
  serverBroker?: { url: string; file: string };
}

/** The variables the simulator reads; nothing else in the environment can stop it. */
const MQTT_VARIABLES = ["MQTT_URL", "MQTT_BROKER", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD"];

/**
 * Parses the simulator's variables: `MQTT_URL` (or the aliases `MQTT_BROKER` + `MQTT_PORT`) and
 * `MQTT_USERNAME`/`MQTT_PASSWORD`. Without a URL the devices publish to the broker of a running
 * `deno task serve` (its `DATA_DIR/broker.json`), else to `MQTT_LISTEN` (default
 * `127.0.0.1:1883`). Throws `ConfigError` naming a bad variable.
 */
export function loadSimulateConfig(
  env: Env,
  opts: LoadSimulateConfigOptions = {},
): ResolvedSimulateConfig {
  // The collector's and the server's loaders own these variables; they are given only the ones
  // the simulator uses so that, say, a bad DATABASE_URL in a shared .env does not stop it.
  const pick = (names: string[]) => Object.fromEntries(names.map((n) => [n, env[n]]));
  const mqtt = loadCollectorConfig(pick(MQTT_VARIABLES)).mqtt;
  let mqttUrl = mqtt.url;
  const mqttUrlDefaulted = mqttUrl === undefined;
  let mqttUrlFrom = env.MQTT_URL?.trim() ? "MQTT_URL" : "MQTT_BROKER";
  if (mqttUrl === undefined && opts.serverBroker) {
    mqttUrl = opts.serverBroker.url;
    mqttUrlFrom = opts.serverBroker.file;
  } else if (mqttUrl === undefined) {
    const listen = loadServeConfig(pick(["MQTT_LISTEN"])).mqttListen;
    const host = listen.host === "0.0.0.0" || listen.host === "::"
      ? "127.0.0.1"
      : listen.host.includes(":")
      ? `[${listen.host}]`
      : listen.host;
    mqttUrl = `mqtt://${host}:${listen.port}`;
    mqttUrlFrom = env.MQTT_LISTEN?.trim() ? "MQTT_LISTEN" : "the default MQTT_LISTEN";
  }
  return {
    mqttUrl,
    mqttUrlDefaulted,
    mqttUrlFrom,
    username: mqtt.username,
    password: mqtt.password,
  };
}
