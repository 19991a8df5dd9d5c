import { deepEqual, equal, match, ok } from "node:assert/strict";
import { createBwrapSandbox } from "../lib/sandbox/mod.ts";
import { SEED_END, SEED_START } from "./fixtures/mcp_seed.ts";
import { rawRequest } from "./fixtures/mcp_raw_http.ts";
import { startTestServer, type TestServer } from "./fixtures/mcp_server.ts";
import { sandboxAvailable } from "./fixtures/mcp_sandbox_available.ts";

type Content = { type: string; text?: string; data?: string; mimeType?: string }[];
type Json = Record<string, unknown>;
type ToolInfo = {
  name: string;
  description?: string;
  inputSchema: { type: string };
  outputSchema?: { type: string };
  annotations?: { readOnlyHint?: boolean };
};

const TOKEN = "test-token-0123456789abcdef";
/** The result store's clock in the token server, moved forward to expire links. */
let clock = Date.now();
const INIT = JSON.stringify({
  jsonrpc: "2.0",
  id: 1,
  method: "initialize",
  params: {
    protocolVersion: "2025-06-18",
    capabilities: {},
    clientInfo: { name: "raw", version: "0" },
  },
});
const MCP_HEADERS = {
  "content-type": "application/json",
  accept: "application/json, text/event-stream",
};

const hasSandbox = await sandboxAvailable();
if (!hasSandbox) {
  console.warn("SKIPPING create_plot over HTTP: bwrap or python3 with pandas missing");
}

function postInit(base: string, headers: Record<string, string> = {}) {
  return fetch(`${base}/mcp`, {
    method: "POST",
    headers: { ...MCP_HEADERS, ...headers },
    body: INIT,
  });
}

async function listsTools(s: TestServer) {
  const client = await s.connect();
  equal(client.getServerVersion()?.name, "ambient-sensors");
  match(client.getInstructions() ?? "", /get_database_schema[\s\S]*execute_sql_query/);
  const tools = (await client.listTools()).tools as ToolInfo[];
  const names = tools.map((t) => t.name);
  for (const name of ["get_database_schema", "list_sensors", "analyze_data", "create_plot"]) {
    ok(names.includes(name), `${name} missing from ${names.join(", ")}`);
  }
  for (const t of tools) {
    ok((t.description ?? "").length > 40, `${t.name} needs a description for the assistant`);
    equal(t.inputSchema.type, "object", t.name);
    ok(t.annotations?.readOnlyHint !== undefined, `${t.name} has no annotations`);
  }
  for (const name of ["get_database_schema", "list_sensors"]) {
    const t = tools.find((x) => x.name === name)!;
    equal(t.outputSchema?.type, "object", `${name} declares structured output`);
  }
}

async function schemaTool(s: TestServer) {
  const client = await s.connect();
  const r = await client.callTool({ name: "get_database_schema", arguments: {} });
  equal(r.isError, undefined);
  const schema = r.structuredContent as {
    tables: {
      name: string;
      kind: string;
      row_count: number;
      row_count_is_estimate: boolean;
      time_range: { min: string; max: string } | null;
      primary_key: string[];
      columns: { name: string; type: string; unit: string | null }[];
    }[];
    metrics: { sensor_type: string; metric: string; unit: string }[];
    hints: string[];
  };
  const names = schema.tables.map((t) => t.name);
  for (const n of ["devices", "sensors", "scd30_measurements", "bmp280_measurements"]) {
    ok(names.includes(n), n);
  }
  ok(names.includes("measurements") && names.includes("metrics"));
  ok(!names.includes("schema_migrations"), "internal tables the SQL role cannot read are hidden");
  ok(!names.includes("rejected_messages"));
  const scd30 = schema.tables.find((t) => t.name === "scd30_measurements")!;
  equal(scd30.kind, "columnar_readings");
  deepEqual([scd30.row_count, scd30.row_count_is_estimate], [150, false]);
  deepEqual(scd30.time_range, { min: SEED_START, max: SEED_END });
  deepEqual(scd30.primary_key, ["sensor_id", "time"]);
  const co2 = scd30.columns.find((c) => c.name === "co2")!;
  deepEqual([co2.type, co2.unit], ["double precision", "ppm"]);
  equal(scd30.columns.find((c) => c.name === "time")!.type, "timestamp with time zone");
  const flexible = schema.tables.find((t) => t.name === "measurements")!;
  equal(flexible.kind, "flexible_readings");
  deepEqual(flexible.time_range, { min: SEED_START, max: "2024-01-01T03:00:00.000Z" });
  equal(flexible.row_count, 110);
  equal(schema.tables.find((t) => t.name === "devices")!.time_range, null);
  ok(schema.metrics.some((m) => m.sensor_type === "bmp280" && m.unit === "hPa"));
  ok(schema.hints.some((h) => /join sensors/.test(h)));
  const text = (r.content as Content)[0].text!;
  match(text, /scd30_measurements \(150 rows, time 2024-01-01T00:00:00\.000Z/);
  match(text, /co2 double precision \[ppm\]/);
}

async function listSensorsTool(s: TestServer) {
  const client = await s.connect();
  const r = await client.callTool({ name: "list_sensors", arguments: {} });
  equal(r.isError, undefined);
  const { sensors } = r.structuredContent as {
    sensors: {
      sensor_id: number;
      device_id: string;
      device_name: string;
      location: string;
      sensor_type: string;
      device_status: string;
      metrics: { metric: string; unit: string | null }[];
      last_seen: string | null;
    }[];
  };
  deepEqual(sensors.map((x) => x.sensor_id).sort(), [1, 2, 3]);
  const kitchen = sensors.find((x) => x.sensor_id === 1)!;
  deepEqual(
    [kitchen.device_id, kitchen.device_name, kitchen.location, kitchen.sensor_type],
    ["esp32-kitchen", "Kitchen board", "kitchen", "scd30"],
    "a sensor without its own location takes its device's",
  );
  equal(kitchen.last_seen, "2024-01-01T01:39:00.000Z");
  deepEqual(kitchen.metrics.find((m) => m.metric === "co2"), { metric: "co2", unit: "ppm" });
  const window = sensors.find((x) => x.sensor_id === 2)!;
  equal(window.location, "kitchen window", "a sensor's own location wins");
  deepEqual(window.metrics.find((m) => m.metric === "pressure"), {
    metric: "pressure",
    unit: "hPa",
  });
  equal(sensors.find((x) => x.sensor_id === 3)!.device_status, "offline");
  match((r.content as Content)[0].text!, /sensor_id 2: bmp280 on esp32-kitchen.*kitchen window/);
}

async function sqlAndCsv(s: TestServer) {
  const client = await s.connect();
  const q = await client.callTool({
    name: "execute_sql_query",
    arguments: {
      sql: "select coalesce(s.location, d.location) as place, count(*)::int as n " +
        "from scd30_measurements m join sensors s using (sensor_id) " +
        "join devices d using (device_id) group by 1 order by 1",
    },
  });
  equal(q.isError, undefined, JSON.stringify(q.content));
  const r = q.structuredContent as Json & { csv_url: string; row_count: number };
  equal(r.row_count, 2);
  const csv = await fetch(r.csv_url);
  equal(csv.status, 200);
  deepEqual((await csv.text()).trim().split(/\r?\n/), ["place,n", "kitchen,100", "office,50"]);
  const refused = await client.callTool({
    name: "execute_sql_query",
    arguments: { sql: "COMMIT; DROP TABLE devices;" },
  });
  equal(refused.isError, true);
  const still = await client.callTool({ name: "list_sensors", arguments: {} });
  equal((still.structuredContent as { sensors: unknown[] }).sensors.length, 3);
}

async function plotAndPng(s: TestServer) {
  const client = await s.connect();
  const q = await client.callTool({
    name: "execute_sql_query",
    arguments: {
      sql: "select time, co2 from scd30_measurements where sensor_id = 1 order by time",
    },
  });
  equal(q.isError, undefined, JSON.stringify(q.content));
  const result = q.structuredContent as { query_id: string; row_count: number; csv_url: string };
  equal(result.row_count, 100);
  const csv = await fetch(result.csv_url);
  equal(csv.status, 200);
  const lines = (await csv.text()).trim().split(/\r?\n/);
  equal(lines.length, 101);
  // Each result carries its own columns, even right after a query with other columns.
  deepEqual(lines.slice(0, 2), ["time,co2", "2024-01-01T00:00:00.000Z,400"]);
  const a = await client.callTool({
    name: "analyze_data",
    arguments: { query_id: result.query_id, code: "print(int(df.co2.max()))" },
  });
  equal((a.content as Content)[0].text?.trim(), "499");
  const p = await client.callTool({
    name: "create_plot",
    arguments: { query_id: result.query_id, plot_code: "df.plot(x='time', y='co2')" },
  });
  equal(p.isError, undefined, JSON.stringify(p.content).slice(0, 500));
  const content = p.content as Content;
  const image = content.find((c) => c.type === "image")!;
  equal(image.mimeType, "image/png");
  const url = /(https?:\/\/\S+\.png\S*)/.exec(JSON.stringify(content))![1].replace(/["\\].*$/, "");
  const png = await fetch(url);
  equal(png.status, 200);
  equal(png.headers.get("content-type"), "image/png");
  const bytes = new Uint8Array(await png.arrayBuffer());
  deepEqual([...bytes.slice(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  equal(bytes.length, atob(image.data!).length, "the link serves the same PNG");
}

async function newSensorType(s: TestServer) {
  await s.db.exec(`
    create table sps30_measurements (time timestamptz not null, sensor_id integer not null,
      pm25 double precision, primary key (sensor_id, time));
    grant select on sps30_measurements to sensor_reader;
    insert into sensors (sensor_id, device_id, sensor_type) values (4, 'esp32-office', 'sps30');
    insert into sps30_measurements values ('2024-02-01T00:00:00Z', 4, 12.5);`);
  const client = await s.connect();
  const schema = (await client.callTool({ name: "get_database_schema", arguments: {} }))
    .structuredContent as { tables: { name: string; kind: string; row_count: number }[] };
  const t = schema.tables.find((x) => x.name === "sps30_measurements");
  deepEqual(t && [t.kind, t.row_count], ["columnar_readings", 1]);
  const { sensors } = (await client.callTool({ name: "list_sensors", arguments: {} }))
    .structuredContent as {
      sensors: { sensor_id: number; location: string; metrics: unknown[] }[];
    };
  const sps = sensors.find((x) => x.sensor_id === 4)!;
  equal(sps.location, "office");
  deepEqual(sps.metrics, [{ metric: "pm25", unit: null }]);
}

async function routesAndHealth(s: TestServer) {
  const get = await fetch(`${s.base}/mcp`, { headers: { accept: "text/event-stream" } });
  equal(get.status, 405);
  await get.body?.cancel();
  for (const path of ["/", "/mcpx", "/files", "/admin"]) {
    const r = await fetch(`${s.base}${path}`);
    equal(r.status, 404, path);
    await r.body?.cancel();
  }
  const h = await fetch(`${s.base}/healthz`);
  equal(h.status, 200);
  const body = await h.json();
  equal(body.ok, true);
  equal(body.db.reachable, true);
  deepEqual(body.collector, { stored: 7 });
  await s.db.close();
  const down = await fetch(`${s.base}/healthz`);
  equal(down.status, 503);
  equal((await down.json()).db.reachable, false);
  const tool = await (await s.connect()).callTool({ name: "list_sensors", arguments: {} });
  equal(tool.isError, true, "a database failure is a tool error, not a crash");
  ok(!/\bat \w+ \(|file:\/\//.test((tool.content as Content)[0].text!), "no stack trace");
}

async function bearerToken(s: TestServer) {
  const none = await postInit(s.base);
  equal(none.status, 401);
  match(none.headers.get("www-authenticate") ?? "", /^Bearer/);
  match((await none.json()).error.message, /Authorization: Bearer/);
  const wrong = await postInit(s.base, { authorization: `Bearer ${TOKEN}x` });
  equal(wrong.status, 401);
  await wrong.body?.cancel();
  const short = await postInit(s.base, { authorization: `Bearer ${TOKEN.slice(0, -1)}` });
  equal(short.status, 401);
  await short.body?.cancel();
  const basic = await postInit(s.base, { authorization: `Basic ${btoa(`u:${TOKEN}`)}` });
  equal(basic.status, 401);
  await basic.body?.cancel();
  const right = await postInit(s.base, { authorization: `Bearer ${TOKEN}` });
  equal(right.status, 200);
  equal((await right.json()).result.serverInfo.name, "ambient-sensors");
  // The SDK client with the token works end to end; without it, connecting fails.
  const client = await s.connect();
  ok((await client.listTools()).tools.length >= 4);
  let refused = false;
  try {
    await s.connect({ token: "not-the-token-at-all" });
  } catch {
    refused = true;
  }
  ok(refused, "a client with the wrong token cannot connect");
}

async function originAndHost(s: TestServer) {
  const auth = { authorization: `Bearer ${TOKEN}` };
  for (const origin of ["http://evil.example", "null", `http://127.0.0.1:${s.port + 1}`]) {
    const r = await postInit(s.base, { ...auth, origin });
    equal(r.status, 403, origin);
    const body = await r.json();
    equal(body.jsonrpc, "2.0");
    match(body.error.message, /Origin/);
  }
  for (const origin of [`http://127.0.0.1:${s.port}`, `http://localhost:${s.port}`]) {
    const r = await postInit(s.base, { ...auth, origin });
    equal(r.status, 200, origin);
    await r.body?.cancel();
  }
  const badHost = await rawRequest(s.port, {
    method: "POST",
    path: "/mcp",
    headers: { ...MCP_HEADERS, ...auth, host: `evil.example:${s.port}` },
    body: INIT,
  });
  equal(badHost.status, 403);
  match(badHost.body, /Host/);
  const rebound = await rawRequest(s.port, {
    method: "POST",
    path: "/mcp/",
    headers: { ...MCP_HEADERS, ...auth, host: `localhost:${s.port}` },
    body: INIT,
  });
  equal(rebound.status, 200, "localhost with the right port is one of our names; /mcp/ works");
}

async function signedLinks(s: TestServer) {
  const saved = await s.results.saveCsv(["time", "co2"], [["2024-01-01T00:00:00.000Z", 612]]);
  const link = new URL(await s.results.fileUrl(saved.queryId, "csv"));
  equal(link.origin, s.base, "links point at SERVER_URL");
  const ok200 = await fetch(link);
  equal(ok200.status, 200);
  equal(ok200.headers.get("content-type"), "text/csv; charset=utf-8");
  match(ok200.headers.get("content-disposition") ?? "", /attachment; filename=".*\.csv"/);
  match(await ok200.text(), /^time,co2\r?\n2024-01-01T00:00:00\.000Z,612/);

  const tampered = new URL(link);
  const sig = tampered.searchParams.get("sig")!;
  tampered.searchParams.set("sig", (sig[0] === "A" ? "B" : "A") + sig.slice(1));
  const forged = new URL(link);
  forged.searchParams.set("exp", String(Number(forged.searchParams.get("exp")) + 86400));
  const otherId = new URL(link.href.replace(saved.queryId, crypto.randomUUID()));
  const unsigned = new URL(link.pathname, link.origin);
  for (
    const [what, url] of [["tampered", tampered], ["extended", forged], [
      "another id",
      otherId,
    ], ["unsigned", unsigned]] as const
  ) {
    const r = await fetch(url);
    ok(r.status === 403 || r.status === 404, `${what}: ${r.status}`);
    ok(!(await r.text()).includes("612"), what);
  }
  const bearer = await fetch(unsigned, { headers: { authorization: `Bearer ${TOKEN}` } });
  equal(bearer.status, 200, "the bearer token opens files without a signature");
  await bearer.body?.cancel();
  const wrongBearer = await fetch(unsigned, { headers: { authorization: "Bearer nope" } });
  equal(wrongBearer.status, 403);
  await wrongBearer.body?.cancel();

  clock += (s.config.query.cacheTtlH + 1) * 3600_000;
  const expired = await fetch(link);
  ok(expired.status === 403 || expired.status === 404, `expired link: ${expired.status}`);
  ok(!(await expired.text()).includes("612"));
}

async function noTraversal(s: TestServer) {
  const secret = "TOP-SECRET-CONTENT";
  await Deno.writeTextFile(`${s.dataDir}/link_secret_probe.csv`, secret);
  await Deno.writeTextFile(`${s.dataDir}/queries_probe.csv`, secret);
  const saved = await s.results.saveCsv(["a"], [[1]]);
  const auth = { authorization: `Bearer ${TOKEN}` };
  const attempts = [
    "/files/../deno.json",
    "/files/../../etc/passwd",
    "/files/%2e%2e/%2e%2e/etc/passwd",
    "/files/%2e%2e%2fqueries_probe.csv",
    "/files/..%2f..%2fetc%2fpasswd.csv",
    "/files/..%2flink_secret_probe.csv",
    "/files/%2fetc%2fpasswd.csv",
    "/files//etc/passwd.csv",
    "/files/" + "a".repeat(5000) + ".csv",
    `/files/${saved.queryId}.csv/../../link_secret_probe.csv`,
    `/files/${saved.queryId}.txt`,
    `/files/${saved.queryId}.csv%00.png`,
    `/files/${saved.queryId.toUpperCase()}x.csv`,
    "/files/link_secret_probe.csv",
    "/files/queries_probe.csv",
    "/files/link_secret.csv",
    `/files/${"../".repeat(8)}etc/hostname`,
  ];
  for (const path of attempts) {
    const r = await rawRequest(s.port, { path, headers: auth });
    ok(
      r.status === 400 || r.status === 403 || r.status === 404,
      `${path.slice(0, 60)}: ${r.status}`,
    );
    ok(!r.body.includes(secret) && !r.body.includes("root:"), path.slice(0, 60));
  }
  const good = await rawRequest(s.port, { path: `/files/${saved.queryId}.csv`, headers: auth });
  equal(good.status, 200, "the same request for a real result works");
  match(good.body, /a\r?\n1/);
}

Deno.test("the MCP HTTP server serves every tool, result links and health over real HTTP", async (t) => {
  await using s = await startTestServer({
    sandbox: hasSandbox ? createBwrapSandbox({ memoryMb: 128, timeoutS: 30 }) : undefined,
    health: () => ({ collector: { stored: 7 } }),
  });
  await t.step(
    "the HTTP server lists every tool with a description and an input schema",
    () => listsTools(s),
  );
  await t.step(
    "get_database_schema over HTTP reports tables, units, row counts and time ranges",
    () => schemaTool(s),
  );
  await t.step(
    "list_sensors over HTTP returns each sensor with device, location, metrics and last reading",
    () => listSensorsTool(s),
  );
  await t.step(
    "execute_sql_query over HTTP returns a CSV link that downloads through /files",
    () => sqlAndCsv(s),
  );
  await t.step({
    name: "create_plot over HTTP returns a PNG whose link downloads through /files",
    ignore: !hasSandbox,
    fn: () => plotAndPng(s),
  });
  await t.step(
    "a sensor type added at run time shows up in the schema and in list_sensors",
    () => newSensorType(s),
  );
  await t.step(
    "GET /mcp answers 405 (stateless), unknown routes 404, /healthz reports the database",
    () => routesAndHealth(s),
  );
});

Deno.test("the MCP HTTP server with MCP_AUTH_TOKEN guards /mcp and /files", async (t) => {
  clock = Date.now();
  await using s = await startTestServer({ token: TOKEN, now: () => clock });
  await t.step(
    "/mcp refuses a missing or wrong bearer token with 401 and accepts the right one",
    () => bearerToken(s),
  );
  await t.step("/mcp refuses a foreign Origin and a foreign Host with 403", () => originAndHost(s));
  await t.step(
    "/files serves a result only with a valid signature or the bearer token",
    () => signedLinks(s),
  );
  await t.step("/files never serves anything outside the result folders", () => noTraversal(s));
});
