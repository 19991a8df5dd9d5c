// The tasks as people deploy them: `deno task …` in its own process group, under its real
// permissions, configured by a seed-style .env (ENV_FILE, so the project folder stays clean),
// with DATA_DIR in a temporary folder outside the project.
import { equal, match, ok } from "node:assert/strict";
import { connect as tcpConnect } from "node:net";
import { join } from "node:path";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { withTestDb } from "../lib/db/testing.ts";
import { Journal } from "../lib/ingest/journal.ts";
import {
  clearSession,
  connectClient,
  countReadings,
  publishReadings,
  startTcpProxy,
  suffix,
  sumTo,
  testBroker,
  waitFor,
} from "./fixtures/collector_harness.ts";
import { childEnv, freePort } from "./fixtures/mcp_child.ts";
import { spawnTask } from "./fixtures/task_child.ts";

const realDb = Deno.env.get("DATABASE_URL") !== undefined;
const NOT_EXPERIMENTAL = /experimental/i;

async function tempFolder(name: string): Promise<AsyncDisposable & { path: string }> {
  const path = await Deno.makeTempDir({ prefix: `deploy-${name}-` });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Writes `vars` as a .env file in `dir` and returns its path. */
async function writeEnvFile(dir: string, vars: Record<string, string>): Promise<string> {
  const file = join(dir, ".env");
  const lines = Object.entries(vars).map(([k, v]) => `${k}=${v}`);
  await Deno.writeTextFile(file, `# seed-style settings\n${lines.join("\n")}\n`);
  return file;
}

function busy(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tcpConnect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
}

async function health(port: number): Promise<Record<string, unknown>> {
  const r = await fetch(`http://127.0.0.1:${port}/healthz`);
  return await r.json();
}

async function withStatus(status: Promise<Deno.CommandStatus>, ms: number): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(`no exit within ${ms} ms`)), ms)
  );
  try {
    return (await Promise.race([status, timeout])).code;
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("with 1883 taken: MQTT_LISTEN=… deno task serve, then a plain deno task simulate in the same folder, whose readings arrive", async () => {
  await using work = await tempFolder("serve");
  const dataDir = join(work.path, "state");
  const port = await freePort();
  const envFile = await writeEnvFile(work.path, {
    PORT: String(port),
    DATA_DIR: dataDir,
    SANDBOX_ENGINE: "off",
  });
  const base = childEnv({ ENV_FILE: envFile });

  // The real busy 1883 of this machine (a Mosquitto of its own): serve says which variable to set.
  if (await busy(1883)) {
    await using first = spawnTask("serve", [], { env: base });
    equal(await withStatus(first.status, 120_000), 1, first.stderr());
    match(first.stderr(), /127\.0\.0\.1:1883.*in use.*MQTT_LISTEN/);
    ok(!/\n\s+at /.test(first.stderr()), first.stderr());
  } else {
    console.log("  (1883 is free here: the busy-1883 message is not checked)");
  }

  const mqttPort = await freePort();
  await using serve = spawnTask("serve", [], {
    env: { ...base, MQTT_LISTEN: `127.0.0.1:${mqttPort}` },
  });
  await serve.waitForLog(/MCP server ready/, 180_000);
  ok(!NOT_EXPERIMENTAL.test(serve.stderr()), serve.stderr());
  match(serve.stderr(), new RegExp(`broker=mqtt://127\\.0\\.0\\.1:${mqttPort}`));
  match(serve.stderr(), new RegExp(`"--allow-write=${dataDir}"`));
  const announced = JSON.parse(await Deno.readTextFile(join(dataDir, "broker.json")));
  equal(announced.url, `mqtt://127.0.0.1:${mqttPort}`);

  // A second server on the same PORT (another DATA_DIR: the process environment wins over the
  // file) names PORT.
  {
    await using other = await tempFolder("serve-other");
    await using second = spawnTask("serve", [], {
      env: { ...base, DATA_DIR: other.path, MQTT_LISTEN: `127.0.0.1:${await freePort()}` },
    });
    equal(await withStatus(second.status, 120_000), 1, second.stderr());
    match(second.stderr(), new RegExp(`127\\.0\\.0\\.1:${port}.*in use.*PORT`));
  }

  await using sim = spawnTask("simulate", ["--devices", "2", "--interval", "1"], { env: base });
  await sim.waitForLog(/devices connected/);
  match(
    sim.stderr(),
    new RegExp(`from ${dataDir}/broker\\.json\\) broker=mqtt://127\\.0\\.0\\.1:${mqttPort}`),
  );
  await waitFor("readings of the simulated boards", async () => {
    const h = await health(port);
    // Capabilities and status count too: 12 stored messages hold at least two rounds of readings.
    return ((h.collector as { stored?: number } | undefined)?.stored ?? 0) >= 12;
  }, { timeoutMs: 60_000, detail: () => sim.stderr() + serve.stderr() });

  sim.signalGroup("SIGINT");
  equal(await withStatus(sim.status, 30_000), 0, sim.stderr());
  match(sim.stderr(), /fleet stopped said_offline=2\/2/);
  serve.signalGroup("SIGINT");
  equal(await withStatus(serve.status, 60_000), 0, serve.stderr());
  ok(!/Second SIG/.test(serve.stderr()), serve.stderr());
  match(serve.stderr(), /Collector stopped .*journal_bytes=0/);
  ok(!(await Deno.stat(join(dataDir, "broker.json")).then(() => true, () => false)));

  // The stdio block it printed for Claude Desktop works as printed, from another folder.
  const printed = serve.stderr().split("Or let Claude Desktop start the server itself")[1];
  const block = JSON.parse(printed.slice(printed.indexOf("{"), printed.lastIndexOf("}") + 1));
  const entry = block.mcpServers["ambient-sensors"] as {
    command: string;
    args: string[];
    env: Record<string, string>;
  };
  equal(entry.env.ENV_FILE, envFile);
  equal(entry.env.DATA_DIR, dataDir);
  const transport = new StdioClientTransport({
    command: entry.command,
    args: entry.args,
    env: childEnv(entry.env),
    cwd: work.path,
    stderr: "pipe",
  });
  let stdioLog = "";
  transport.stderr?.on("data", (c: Uint8Array) => stdioLog += new TextDecoder().decode(c));
  const client = new Client({ name: "deploy-test", version: "1.0.0" });
  await client.connect(transport);
  try {
    const r = await client.callTool({
      name: "execute_sql_query",
      arguments: { sql: "select count(*)::int as n from scd30_measurements" },
    });
    ok(!r.isError, JSON.stringify(r.content) + stdioLog);
    const row = ((r.structuredContent as { preview: unknown[] }).preview ?? [])[0];
    const n = Array.isArray(row) ? Number(row[0]) : Number((row as { n: number }).n);
    ok(n >= 2, `readings seen over stdio: ${n}\n${stdioLog}`);
  } finally {
    await client.close();
  }
  ok(!NOT_EXPERIMENTAL.test(stdioLog), stdioLog);
});

Deno.test({
  name:
    "a seed .env: deno task collect and serve's embedded collector share one broker without a session fight; deno task monitor starts and stops",
  ignore: !realDb,
  async fn() {
    await using db = await withTestDb();
    const broker = await testBroker();
    await using work = await tempFolder("seed");
    const pg = new URL(db.url!);
    const mq = new URL(broker.url);
    const seed = await writeEnvFile(work.path, {
      DB_HOST: pg.hostname,
      DB_PORT: pg.port || "5432",
      DB_USER: decodeURIComponent(pg.username || "postgres"),
      DB_PASSWORD: decodeURIComponent(pg.password) || "unused-with-trust",
      DB_NAME: pg.pathname.slice(1),
      MQTT_BROKER: mq.hostname,
      MQTT_PORT: mq.port || "1883",
      PORT: String(await freePort()),
      DATA_DIR: join(work.path, "collect"),
    });
    await using serveFolder = await tempFolder("seed-serve");
    const servePort = await freePort();
    const serveEnv = await writeEnvFile(serveFolder.path, {
      PORT: String(servePort),
      DATA_DIR: join(serveFolder.path, "state"),
      SANDBOX_ENGINE: "off",
    });
    const host = Deno.hostname().replace(/[^A-Za-z0-9_-]/g, "-");
    const device = `deploy-${suffix()}`;
    const total = 300;
    try {
      await using collect = spawnTask("collect", [], { env: childEnv({ ENV_FILE: seed }) });
      await using serve = spawnTask("serve", [], {
        env: childEnv({ ENV_FILE: serveEnv, MQTT_URL: broker.url }),
      });
      await collect.waitForLog(/Subscribed/);
      await serve.waitForLog(/MCP server ready/, 180_000);
      await serve.waitForLog(/Subscribed/);
      match(serve.stderr(), new RegExp(`broker=${broker.url.replace(/\/$/, "")}`));

      const pub = await connectClient(broker.url, `deploy-pub-${suffix()}`);
      await publishReadings(pub, { device, from: 0, to: total, chunk: 50, pauseMs: 50 });
      await pub.endAsync();

      await waitFor(
        "every reading in PostgreSQL",
        async () => (await countReadings(db, device)).columnar === total,
        { detail: collect.stderr },
      );
      const mcp = new Client({ name: "deploy-test", version: "1.0.0" });
      await mcp.connect(
        new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${servePort}/mcp`)),
      );
      const embeddedCount = async () => {
        const r = await mcp.callTool({
          name: "execute_sql_query",
          arguments: {
            sql: `select count(*)::int as n, sum(m.co2)::float8 as s from scd30_measurements m
                  join sensors s using (sensor_id) where s.device_id = '${device}'`,
          },
        });
        const row = ((r.structuredContent as { preview: unknown[] }).preview ?? [])[0];
        return Array.isArray(row) ? Number(row[0]) : Number((row as { n: number }).n);
      };
      await waitFor(
        "every reading in the embedded database",
        async () => await embeddedCount() === total,
        { detail: serve.stderr },
      );
      await mcp.close();
      equal((await countReadings(db, device)).co2Sum, sumTo(total));

      for (const child of [collect, serve]) {
        ok(
          !/Lost the MQTT connection|taken over|MQTT_CLIENT_ID/.test(child.stderr()),
          child.stderr(),
        );
        ok(!NOT_EXPERIMENTAL.test(child.stderr()), child.stderr());
      }
      serve.signalGroup("SIGTERM");
      collect.signalGroup("SIGINT");
      equal(await withStatus(serve.status, 60_000), 0, serve.stderr());
      equal(await withStatus(collect.status, 60_000), 0, collect.stderr());

      await using monitor = spawnTask("monitor", [], { env: childEnv({ ENV_FILE: seed }) });
      await monitor.waitForLog(/Monitor started/);
      monitor.signalGroup("SIGINT");
      equal(await withStatus(monitor.status, 30_000), 0, monitor.stderr());
      match(monitor.stderr(), /Monitor stopped/);
    } finally {
      // The default ids left persistent sessions on a shared broker: end them.
      await clearSession(broker.url, `ambient-collector-${host}`.slice(0, 64));
      await clearSession(broker.url, `ambient-serve-${host}`.slice(0, 64));
      await broker.close();
    }
  },
});

Deno.test({
  name:
    "deno task collect: one SIGINT or SIGTERM to its process group writes the journal and exits 0; a deliberate second signal stops at once and the next start replays everything",
  ignore: !realDb,
  async fn() {
    await using db = await withTestDb();
    const broker = await testBroker();
    const pg = new URL(db.url!);
    const proxy = await startTcpProxy(pg.hostname, Number(pg.port || 5432));
    await using work = await tempFolder("signals");
    const dataDir = join(work.path, "state");
    const clientId = `deploy-signals-${suffix()}`;
    const env = childEnv({
      ENV_FILE: await writeEnvFile(work.path, {
        DB_HOST: "127.0.0.1",
        DB_PORT: String(proxy.port),
        DB_USER: decodeURIComponent(pg.username || "postgres"),
        DB_PASSWORD: decodeURIComponent(pg.password) || "unused-with-trust",
        DB_NAME: pg.pathname.slice(1),
        MQTT_BROKER: new URL(broker.url).hostname,
        MQTT_PORT: new URL(broker.url).port || "1883",
        MQTT_CLIENT_ID: clientId,
        DATA_DIR: dataDir,
      }),
    });
    const device = `deploy-${suffix()}`;
    const rows = async () => (await countReadings(db, device)).columnar;
    const pending = () => {
      const journal = Journal.open({ dir: join(dataDir, "journal"), maxBytes: 1 << 30 });
      try {
        return journal.pendingBytes;
      } finally {
        journal.close();
      }
    };
    const pub = await connectClient(broker.url, `deploy-pub-${suffix()}`);
    try {
      // 1. One SIGINT to the group (a terminal's Ctrl+C) in the middle of a stream.
      {
        await using c = spawnTask("collect", [], { env });
        await c.waitForLog(/Subscribed/);
        const stream = publishReadings(pub, { device, from: 0, to: 900, chunk: 50, pauseMs: 60 });
        await waitFor("the first stored readings", async () => await rows() >= 150);
        c.signalGroup("SIGINT");
        equal(await withStatus(c.status, 60_000), 0, c.stderr());
        match(c.stderr(), /SIGINT: stopping; writing the journal/);
        ok(!/Second SIG/.test(c.stderr()), c.stderr());
        equal(pending(), 0);
        await stream;
      }
      // 2. The rest waited at the broker; then SIGTERM to the group stops as cleanly.
      {
        await using c = spawnTask("collect", [], { env });
        // Subscribed first: the rows may all be stored already, and a signal while the process
        // still loads its modules would end it before it listens for signals.
        await c.waitForLog(/Subscribed/);
        await waitFor("the readings published while stopped", async () => await rows() === 900, {
          detail: c.stderr,
        });
        c.signalGroup("SIGTERM");
        equal(await withStatus(c.status, 60_000), 0, c.stderr());
        match(c.stderr(), /SIGTERM: stopping/);
        ok(!/Second SIG/.test(c.stderr()), c.stderr());
        equal(pending(), 0);
      }
      // 3. PostgreSQL away: the journal holds; a deliberate second signal leaves at once.
      {
        await using c = spawnTask("collect", [], { env });
        await c.waitForLog(/Subscribed/);
        proxy.cut();
        await publishReadings(pub, { device, from: 900, to: 1200, chunk: 50, pauseMs: 20 });
        await c.waitForLog(/Database unavailable/);
        // Time to take the rest from the broker into the journal (checked after the exit).
        await new Promise((r) => setTimeout(r, 2000));
        c.signalGroup("SIGTERM");
        await c.waitForLog(/SIGTERM: stopping/);
        await new Promise((r) => setTimeout(r, 1500));
        const t0 = Date.now();
        c.signalGroup("SIGTERM");
        equal(await withStatus(c.status, 10_000), 130, c.stderr());
        ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
        match(c.stderr(), /Second SIGTERM: stopping at once/);
        ok(pending() > 0, "the journal held nothing when the process was stopped");
      }
      // 4. The next start replays the journal: every reading stored, each once.
      proxy.restore();
      {
        await using c = spawnTask("collect", [], { env });
        await c.waitForLog(/Replaying messages left in the journal/);
        await waitFor("every reading", async () => await rows() === 1200, { detail: c.stderr });
        c.signalGroup("SIGINT");
        equal(await withStatus(c.status, 60_000), 0, c.stderr());
      }
      const counts = await countReadings(db, device);
      equal(counts.columnar, 1200);
      equal(counts.co2Sum, sumTo(1200));
    } finally {
      await pub.endAsync();
      await clearSession(broker.url, clientId);
      await proxy.close();
      await broker.close();
    }
  },
});
