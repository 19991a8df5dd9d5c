import { equal, match, ok } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import mqtt from "mqtt";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { withTestDb } from "../lib/db/testing.ts";
import { childEnv, freePort, type ServeChild, spawnServe } from "./fixtures/mcp_child.ts";
import { writeSelfSignedCert } from "./fixtures/tls_cert.ts";
import { taskArgs } from "./fixtures/task_args.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
// `deno task serve` exactly: the task's permission set for this DATA_DIR, no -A.
const serve = (dataDir: string, extra: string[] = []) => taskArgs("serve", dataDir, extra);
const NO_STACK = /^\s+at |file:\/\/\//m;

/** DATA_DIR in the system's temporary folder, outside the project. */
async function tempDataDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "test-serve-" });
}

async function stop(child: ServeChild, timeoutMs = 20_000): Promise<number> {
  child.process.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const status = await Promise.race([
    child.process.status,
    new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error("no exit after SIGTERM")), timeoutMs)
    ),
  ]).finally(() => clearTimeout(timer));
  return status.code;
}

async function connect(url: string, client?: Deno.HttpClient): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(url), {
    fetch: client
      ? (input: string | URL, init?: RequestInit) => fetch(input, { ...init, client })
      : undefined,
  });
  const c = new Client({ name: "serve-test", version: "1.0.0" });
  await c.connect(transport);
  return c;
}

async function publish(url: string, messages: [string, unknown][]): Promise<void> {
  const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 5000 });
  try {
    for (const [topic, payload] of messages) {
      await client.publishAsync(topic, JSON.stringify(payload), { qos: 1 });
    }
  } finally {
    await client.endAsync();
  }
}

async function countReadings(client: Client, device: string): Promise<number[]> {
  const r = await client.callTool({
    name: "execute_sql_query",
    arguments: {
      sql: `select m.co2 from scd30_measurements m join sensors s using (sensor_id)
            where s.device_id = '${device}' order by m.time`,
    },
  });
  if (r.isError) throw new Error(JSON.stringify(r.content));
  const { preview } = r.structuredContent as { preview: unknown };
  // The preview lists rows as objects or arrays; take the co2 values either way.
  const rows = (preview as unknown[]).map((row) =>
    Array.isArray(row) ? Number(row[0]) : Number((row as Record<string, unknown>).co2)
  );
  return rows;
}

Deno.test("deno task serve with no configuration runs the whole stack and stops cleanly", async () => {
  const dataDir = await tempDataDir();
  try {
    const port = await freePort();
    const mqttPort = await freePort();
    const env = childEnv({
      DATA_DIR: dataDir,
      PORT: String(port),
      MQTT_LISTEN: `127.0.0.1:${mqttPort}`,
      SANDBOX_ENGINE: "off",
    });
    const device = "embedded-test";
    const ts = Math.floor(Date.now() / 1000);
    {
      await using child = spawnServe(serve(dataDir), { cwd: ROOT, env });
      await child.waitReady(`http://127.0.0.1:${port}/healthz`);
      match(child.stderr(), new RegExp(`MCP server ready: http://127\\.0\\.0\\.1:${port}/mcp`));
      match(child.stderr(), /"mcpServers"[\s\S]*"mcp-remote"/, "prints a Claude Desktop config");
      match(child.stderr(), /"--stdio"/, "and the stdio form");
      {
        // The embedded database belongs to one process: a second server on it must refuse.
        await using second = spawnServe(serve(dataDir), {
          cwd: ROOT,
          env: {
            ...env,
            PORT: String(await freePort()),
            MQTT_LISTEN: `127.0.0.1:${await freePort()}`,
          },
        });
        equal((await second.process.status).code, 1);
        await second[Symbol.asyncDispose]();
        match(second.stderr(), /Another server already uses DATA_DIR/);
      }

      await publish(`mqtt://127.0.0.1:${mqttPort}`, [
        [`devices/${device}/capabilities`, {
          device_name: "Test board",
          device_location: "lab",
          sensors: ["scd30"],
        }],
        [`devices/${device}/sensors/scd30/data`, {
          timestamp: ts,
          value: { co2: { reading: 612 }, temperature: { reading: 21.5 } },
        }],
      ]);
      const client = await connect(`http://127.0.0.1:${port}/mcp`);
      try {
        let rows: number[] = [];
        for (let i = 0; i < 100 && rows.length === 0; i++) {
          rows = await countReadings(client, device);
          if (rows.length === 0) await new Promise((r) => setTimeout(r, 200));
        }
        if (rows.join() !== "612") console.error("SERVE STDERR:\n" + child.stderr());
        equal(rows.join(), "612", "the published reading is stored and readable over MCP");
        const sensors = await client.callTool({ name: "list_sensors", arguments: {} });
        const list = (sensors.structuredContent as { sensors: { location: string }[] }).sensors;
        equal(list[0]?.location, "lab");
      } finally {
        await client.close();
      }
      const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
      equal(health.mode, "embedded");
      ok(health.collector, "healthz carries the collector's statistics");
      // Acknowledged by the broker just before the shutdown: it must not be lost either.
      await publish(`mqtt://127.0.0.1:${mqttPort}`, [
        [`devices/${device}/sensors/scd30/data`, {
          timestamp: ts + 60,
          value: { co2: { reading: 655 } },
        }],
      ]);
      equal(await stop(child), 0, "SIGTERM ends the process with exit code 0");
      ok(!NO_STACK.test(child.stderr()), child.stderr());
    }
    // Restart on the same DATA_DIR: both readings survived the shutdown.
    {
      await using child = spawnServe(serve(dataDir), { cwd: ROOT, env });
      await child.waitReady(`http://127.0.0.1:${port}/healthz`);
      const client = await connect(`http://127.0.0.1:${port}/mcp`);
      try {
        let rows: number[] = [];
        for (let i = 0; i < 50 && rows.length < 2; i++) {
          rows = await countReadings(client, device);
          if (rows.length < 2) await new Promise((r) => setTimeout(r, 200));
        }
        equal(rows.join(), "612,655");
      } finally {
        await client.close();
      }
      equal(await stop(child), 0);
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("deno task serve --https serves MCP over TLS and keeps plain HTTP on loopback", async () => {
  await using db = await withTestDb();
  const dataDir = await tempDataDir();
  const tls = await Deno.makeTempDir({ prefix: "serve-tls-" });
  try {
    await writeSelfSignedCert(tls);
    const [port, httpsPort, mqttPort] = [await freePort(), await freePort(), await freePort()];
    const env = childEnv({
      DATA_DIR: dataDir,
      PORT: String(port),
      HTTPS_PORT: String(httpsPort),
      MQTT_LISTEN: `127.0.0.1:${mqttPort}`,
      TLS_CERT_FILE: `${tls}/cert.pem`,
      TLS_KEY_FILE: `${tls}/key.pem`,
      SANDBOX_ENGINE: "off",
      ...(db.url ? { DATABASE_URL: db.url } : {}),
    });
    await using child = spawnServe(serve(dataDir, ["--https"]), { cwd: ROOT, env });
    using client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(`${tls}/cert.pem`)],
    });
    await child.waitReady(`https://127.0.0.1:${httpsPort}/healthz`, { client });
    match(child.stderr(), new RegExp(`MCP server ready: https://127\\.0\\.0\\.1:${httpsPort}/mcp`));
    const mcp = await connect(`https://127.0.0.1:${httpsPort}/mcp`, client);
    try {
      const { tools } = await mcp.listTools();
      ok(tools.some((t: { name: string }) => t.name === "list_sensors"));
      const q = await mcp.callTool({
        name: "execute_sql_query",
        arguments: { sql: "select 1 as one" },
      });
      const csvUrl = (q.structuredContent as { csv_url: string }).csv_url;
      match(csvUrl, new RegExp(`^https://127\\.0\\.0\\.1:${httpsPort}/files/`), "links use HTTPS");
      const csv = await fetch(csvUrl, { client });
      equal(csv.status, 200);
      match(await csv.text(), /^one\r?\n1/);
    } finally {
      await mcp.close();
    }
    let untrusted = false;
    try {
      await fetch(`https://127.0.0.1:${httpsPort}/healthz`);
    } catch {
      untrusted = true;
    }
    ok(untrusted, "the server really speaks TLS with the given certificate");
    const plain = await fetch(`http://127.0.0.1:${port}/healthz`);
    equal(plain.status, 200, "plain HTTP stays available on loopback");
    await plain.body?.cancel();
    equal(await stop(child), 0);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
    await Deno.remove(tls, { recursive: true });
  }
});

Deno.test("start-up problems print one clear line and exit 1 without a stack trace", async () => {
  const dataDir = await tempDataDir();
  try {
    const base = { DATA_DIR: dataDir, SANDBOX_ENGINE: "off" };
    const cases: [string[], Record<string, string>, RegExp][] = [
      [[], { PORT: "eighty" }, /PORT/],
      [[], { HOST: "0.0.0.0" }, /MCP_AUTH_TOKEN/],
      [["--https"], { PORT: String(await freePort()) }, /TLS_CERT_FILE/],
      [["--bogus"], {}, /bogus/],
    ];
    for (const [args, extra, expected] of cases) {
      await using child = spawnServe(serve(dataDir, args), {
        cwd: ROOT,
        env: childEnv({ ...base, MQTT_LISTEN: `127.0.0.1:${await freePort()}`, ...extra }),
      });
      const status = await child.process.status;
      ok(
        status.code === 1 || status.code === 2,
        `${args} ${JSON.stringify(extra)}: ${status.code}`,
      );
      await child[Symbol.asyncDispose]();
      match(child.stderr(), expected);
      ok(!NO_STACK.test(child.stderr()), child.stderr());
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
