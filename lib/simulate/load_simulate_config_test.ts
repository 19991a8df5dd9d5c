import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { ConfigError } from "../config/mod.ts";
import { loadSimulateConfig } from "./load_simulate_config.ts";

Deno.test("loadSimulateConfig() without MQTT_URL publishes to the embedded broker's address", () => {
  assertEquals(loadSimulateConfig({}), {
    mqttUrl: "mqtt://127.0.0.1:1883",
    mqttUrlDefaulted: true,
    mqttUrlFrom: "the default MQTT_LISTEN",
    username: undefined,
    password: undefined,
  });
  assertEquals(
    loadSimulateConfig({ MQTT_LISTEN: "0.0.0.0:1884" }).mqttUrl,
    "mqtt://127.0.0.1:1884",
  );
  assertEquals(loadSimulateConfig({ MQTT_LISTEN: "[::1]:1885" }).mqttUrl, "mqtt://[::1]:1885");
});

Deno.test("loadSimulateConfig() takes MQTT_URL, or the seed's MQTT_BROKER and MQTT_PORT, and credentials", () => {
  const c = loadSimulateConfig({
    MQTT_URL: "mqtts://broker.example:8883",
    MQTT_USERNAME: "sim",
    MQTT_PASSWORD: "secret",
  });
  assertEquals(c, {
    mqttUrl: "mqtts://broker.example:8883",
    mqttUrlDefaulted: false,
    mqttUrlFrom: "MQTT_URL",
    username: "sim",
    password: "secret",
  });
  const alias = loadSimulateConfig({ MQTT_BROKER: "pi.local", MQTT_PORT: "1884" });
  assertEquals([alias.mqttUrl, alias.mqttUrlDefaulted], ["mqtt://pi.local:1884", false]);
});

Deno.test("loadSimulateConfig() names a bad MQTT variable and ignores the variables it does not use", () => {
  for (
    const [env, variable] of [[{ MQTT_URL: "http://x" }, "MQTT_URL"], [
      { MQTT_BROKER: "pi.local", MQTT_PORT: "99999" },
      "MQTT_PORT",
    ], [{ MQTT_LISTEN: "1883" }, "MQTT_LISTEN"]] as const
  ) {
    throws(() => loadSimulateConfig(env), (err: unknown) => {
      ok(err instanceof ConfigError && err.variable === variable, String(err));
      return true;
    });
  }
  const c = loadSimulateConfig({ DATABASE_URL: "mysql://nope", PORT: "eighty" });
  assertEquals(c.mqttUrl, "mqtt://127.0.0.1:1883");
});

Deno.test("loadSimulateConfig() prefers the broker a running server announced over MQTT_LISTEN", () => {
  const serverBroker = { url: "mqtt://127.0.0.1:1884", file: "/srv/data/broker.json" };
  const c = loadSimulateConfig({ MQTT_LISTEN: "127.0.0.1:1883" }, { serverBroker });
  assertEquals([c.mqttUrl, c.mqttUrlDefaulted, c.mqttUrlFrom], [
    "mqtt://127.0.0.1:1884",
    true,
    "/srv/data/broker.json",
  ]);
  // An explicit MQTT_URL still wins.
  assertEquals(
    loadSimulateConfig({ MQTT_URL: "mqtt://pi.local:1883" }, { serverBroker }).mqttUrl,
    "mqtt://pi.local:1883",
  );
});
