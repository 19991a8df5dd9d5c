// `deno task serve` with the embedded broker on a LAN address: accounts required, the in-process
// collector logs in with them, a device cannot forge another device's readings.
import { deepEqual, equal, match, ok, rejects } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { childEnv, freePort, spawnServe } from "./fixtures/mcp_child.ts";
import { writeSelfSignedCert } from "./fixtures/tls_cert.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// `deno task serve` exactly: the task's permission set, no -A.

async function dataDirUnderProject(): Promise<string> {
  await Deno.mkdir(`${ROOT}/data`, { recursive: true });
  return await Deno.makeTempDir({ dir: `${ROOT}/data`, prefix: "test-broker-" });
}

Deno.test("serve refuses a LAN MQTT_LISTEN without accounts", async () => {
  const dataDir = await dataDirUnderProject();
  try {
    await using child = spawnServe(taskArgs("serve", dataDir), {
      cwd: ROOT,
      env: childEnv({
        DATA_DIR: dataDir,
        SANDBOX_ENGINE: "off",
        PORT: String(await freePort()),
        MQTT_LISTEN: `0.0.0.0:${await freePort()}`,
      }),
    });
    equal((await child.process.status).code, 1);
    await child[Symbol.asyncDispose]();
    match(child.stderr(), /MQTT_LISTEN is "0\.0\.0\.0:\d+".*MQTT_USERNAME and MQTT_PASSWORD/);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("serve with accounts and mqtts: devices log in, publish only as themselves, the collector stores", async () => {
  const dataDir = await dataDirUnderProject();
  try {
    await Deno.writeTextFile(
      `${dataDir}/devices.txt`,
      "kitchen:kitchen-secret\noffice:office-secret\n",
    );
    await writeSelfSignedCert(dataDir);
    const ca = await Deno.readTextFile(`${dataDir}/cert.pem`);
    const port = await freePort();
    const mqttPort = await freePort();
    await using child = spawnServe(taskArgs("serve", dataDir), {
      cwd: ROOT,
      env: childEnv({
        DATA_DIR: dataDir,
        SANDBOX_ENGINE: "off",
        PORT: String(port),
        MQTT_LISTEN: `0.0.0.0:${mqttPort}`,
        MQTT_USERNAME: "collector",
        MQTT_PASSWORD: "collector-secret",
        MQTT_DEVICE_CREDENTIALS_FILE: `${dataDir}/devices.txt`,
        MQTT_TLS_CERT_FILE: `${dataDir}/cert.pem`,
        MQTT_TLS_KEY_FILE: `${dataDir}/key.pem`,
      }),
    });
    await child.waitReady(`http://127.0.0.1:${port}/healthz`, { timeoutMs: 150_000 });
    const url = `mqtts://127.0.0.1:${mqttPort}`;
    await rejects(mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000, ca }));
    const ts = Math.floor(Date.now() / 1000);
    const kitchen = await mqtt.connectAsync(url, {
      clientId: "kitchen",
      username: "kitchen",
      password: "kitchen-secret",
      reconnectPeriod: 0,
      ca,
    });
    kitchen.on("error", () => {});
    await kitchen.publishAsync(
      "devices/kitchen/sensors/scd30/data",
      JSON.stringify({ timestamp: ts, value: { co2: { reading: 612 } } }),
      { qos: 1 },
    );
    // A forged reading for another device ends the connection and is not stored.
    const closed = new Promise<void>((r) => kitchen.once("close", () => r()));
    kitchen.publish(
      "devices/office/sensors/scd30/data",
      JSON.stringify({ timestamp: ts, value: { co2: { reading: 9999 } } }),
      { qos: 1 },
    );
    await closed;
    kitchen.end(true);

    const mcp = new Client({ name: "broker-test", version: "1.0.0" });
    await mcp.connect(new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${port}/mcp`)));
    let rows: unknown[] = [];
    for (let i = 0; i < 50; i++) {
      const r = await mcp.callTool({
        name: "execute_sql_query",
        arguments: {
          sql:
            "select s.device_id, m.co2 from scd30_measurements m join sensors s using (sensor_id) " +
            "order by 1",
        },
      });
      ok(!r.isError, JSON.stringify(r.content));
      rows = (r.structuredContent as { preview: unknown[] }).preview;
      if (rows.length > 0) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    deepEqual(rows, [["kitchen", 612]], child.stderr());
    await mcp.close();
    child.process.kill("SIGTERM");
    equal((await child.process.status).code, 0);
    match(child.stderr(), /MQTT publish refused/);
    match(child.stderr(), new RegExp(`Devices publish to: mqtts://127\\.0\\.0\\.1:${mqttPort}`));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
