import { type Env, loadCollectorConfig, loadServeConfig } from "../config/mod.ts";

/** Everything `simulate.ts` reads from the environment, fully resolved. */
export interface ResolvedSimulateConfig {
  /** Broker the simulated devices publish to. */
  mqttUrl: string;
  /** True when no `MQTT_URL`/`MQTT_BROKER` was set and the embedded broker's address is assumed. */
  mqttUrlDefaulted: boolean;
  username: string | undefined;
  password: string | undefined;
}

/** The variables the simulator reads; nothing else in the environment can stop it. */
const MQTT_VARIABLES = ["MQTT_URL", "MQTT_BROKER", "MQTT_PORT", "MQTT_USERNAME", "MQTT_PASSWORD"];

/**
 * Parses the simulator's variables: `MQTT_URL` (or the aliases `MQTT_BROKER` + `MQTT_PORT`) and
 * `MQTT_USERNAME`/`MQTT_PASSWORD`. Without a URL the devices publish to the broker `deno task serve`
 * embeds, at `MQTT_LISTEN` (default `127.0.0.1:1883`). Throws `ConfigError` naming a bad variable.
 */
export function loadSimulateConfig(env: Env): ResolvedSimulateConfig {
  // The collector's and the server's loaders own these variables; they are given only the ones
  // the simulator uses so that, say, a bad DATABASE_URL in a shared .env does not stop it.
  const pick = (names: string[]) => Object.fromEntries(names.map((n) => [n, env[n]]));
  const mqtt = loadCollectorConfig(pick(MQTT_VARIABLES)).mqtt;
  let mqttUrl = mqtt.url;
  const mqttUrlDefaulted = mqttUrl === undefined;
  if (mqttUrl === undefined) {
    const listen = loadServeConfig(pick(["MQTT_LISTEN"])).mqttListen;
    const host = listen.host === "0.0.0.0" || listen.host === "::"
      ? "127.0.0.1"
      : listen.host.includes(":")
      ? `[${listen.host}]`
      : listen.host;
    mqttUrl = `mqtt://${host}:${listen.port}`;
  }
  return { mqttUrl, mqttUrlDefaulted, username: mqtt.username, password: mqtt.password };
}
