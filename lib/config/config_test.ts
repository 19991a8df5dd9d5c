import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { ConfigError, loadCollectorConfig, loadMonitorConfig, loadServeConfig } from "./mod.ts";

Deno.test("loadServeConfig() with nothing set gives the embedded defaults", () => {
  const c = loadServeConfig({});
  assertEquals(c.databaseUrl, undefined);
  assertEquals(c.collector.mqtt.url, undefined);
  assertEquals([c.host, c.port, c.httpsPort], ["127.0.0.1", 8000, 8001]);
  assertEquals(c.serverUrl, "http://127.0.0.1:8000");
  assertEquals(c.mqttListen, { host: "127.0.0.1", port: 1883 });
  assertEquals(c.sandbox.engine, "auto");
  assertEquals(c.sandbox.image, "ambient-sensors-sandbox");
  assertEquals(c.query, {
    timeoutS: 10,
    maxRows: 100000,
    cacheTtlH: 24,
    cacheMaxBytes: 1 << 30,
    workMemMb: 16,
    tempFileMb: 256,
    maxMemoryMb: 256,
  });
  assertEquals(c.dataDir, "./data");
});

Deno.test("the seed's DB_* and MQTT_BROKER aliases keep working", () => {
  const c = loadCollectorConfig({
    DB_HOST: "db.local",
    DB_PORT: "5433",
    DB_USER: "sensor",
    DB_PASSWORD: "p@ss word",
    DB_NAME: "ambient",
    MQTT_BROKER: "broker.local",
    MQTT_PORT: "1884",
  });
  assertEquals(c.databaseUrl, "postgres://sensor:p%40ss%20word@db.local:5433/ambient");
  assertEquals(c.mqtt.url, "mqtt://broker.local:1884");
  assertEquals(
    loadServeConfig({ DOCKER_IMAGE: "mine" }).sandbox.image,
    "mine",
  );
});

Deno.test("a bad value stops start-up with a message naming the variable", () => {
  const cases: [Record<string, string>, string][] = [
    [{ PORT: "eighty" }, "PORT"],
    [{ PORT: "70000" }, "PORT"],
    [{ DATABASE_URL: "mysql://x" }, "DATABASE_URL"],
    [{ MQTT_URL: "not a url" }, "MQTT_URL"],
    [{ SANDBOX_ENGINE: "podman" }, "SANDBOX_ENGINE"],
    [{ STORAGE_LAYOUTS: "columnar,rows" }, "STORAGE_LAYOUTS"],
    [{ JOURNAL_MAX_MB: "0" }, "JOURNAL_MAX_MB"],
    [{ MQTT_LISTEN: "1883" }, "MQTT_LISTEN"],
    [{ HOST: "0.0.0.0" }, "HOST"],
    [{ MQTT_SHARED_GROUP: "a/b" }, "MQTT_SHARED_GROUP"],
    [{ QUERY_TIMEOUT_S: "NaN" }, "QUERY_TIMEOUT_S"],
  ];
  for (const [env, variable] of cases) {
    throws(() => loadServeConfig(env), (err: unknown) => {
      assertEquals(err instanceof ConfigError && err.variable, variable, JSON.stringify(env));
      assertEquals((err as Error).message.includes(variable), true);
      return true;
    });
  }
});

Deno.test("a non-loopback HOST is accepted with a token or an explicit opt-out", () => {
  assertEquals(
    loadServeConfig({ HOST: "0.0.0.0", MCP_AUTH_TOKEN: "x".repeat(32) }).host,
    "0.0.0.0",
  );
  assertEquals(
    loadServeConfig({ HOST: "0.0.0.0", ALLOW_INSECURE_NON_LOOPBACK: "true" }).port,
    8000,
  );
});

Deno.test("loadMonitorConfig() requires both Pushover credentials", () => {
  assertEquals(loadMonitorConfig({}).pushover, undefined);
  throws(() => loadMonitorConfig({ PUSHOVER_USER: "u" }), /PUSHOVER_TOKEN/);
  const c = loadMonitorConfig({
    PUSHOVER_USER: "u",
    PUSHOVER_TOKEN: "t",
    PUSHOVER_API_URL: "http://127.0.0.1:9/",
  });
  assertEquals(c.pushover, { user: "u", token: "t", apiUrl: "http://127.0.0.1:9" });
  assertEquals([c.checkIntervalS, c.inactivityThresholdS], [60, 300]);
});

Deno.test("a number variable that is not a finite number says so in plain words", () => {
  for (const value of ["abc", "1e999", "-Infinity"]) {
    throws(
      () => loadMonitorConfig({ INACTIVITY_THRESHOLD: value }),
      {
        message:
          `Invalid configuration: INACTIVITY_THRESHOLD must be a finite number, got "${value}"`,
      },
    );
  }
});

Deno.test("loadServeConfig() reads the embedded broker's accounts and TLS files", () => {
  const c = loadServeConfig({
    MQTT_LISTEN: "0.0.0.0:1883",
    MQTT_USERNAME: "collector",
    MQTT_PASSWORD: "secret-secret",
    MQTT_DEVICE_CREDENTIALS_FILE: "/etc/ambient/devices.txt",
    MQTT_TLS_CERT_FILE: "/etc/ambient/cert.pem",
    MQTT_TLS_KEY_FILE: "/etc/ambient/key.pem",
  });
  assertEquals(c.mqttBroker, {
    deviceCredentialsFile: "/etc/ambient/devices.txt",
    tlsCertFile: "/etc/ambient/cert.pem",
    tlsKeyFile: "/etc/ambient/key.pem",
    allowInsecure: false,
  });
  assertEquals(c.collector.mqtt.username, "collector");
});

Deno.test("LINK_SECRET is optional and must be at least 32 characters", () => {
  assertEquals(loadServeConfig({}).linkSecret, undefined);
  assertEquals(loadServeConfig({ LINK_SECRET: "k".repeat(32) }).linkSecret, "k".repeat(32));
  throws(
    () => loadServeConfig({ LINK_SECRET: "short" }),
    (e: unknown) => e instanceof ConfigError && e.variable === "LINK_SECRET",
  );
});
