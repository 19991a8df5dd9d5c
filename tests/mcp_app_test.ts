// The sensor MCP App: tools link to it, its ui:// resource is listed and read with the MCP Apps
// MIME type and _meta, and its HTML, loaded into a minimal host page in headless Chromium that
// speaks the Apps handshake (ui/initialize, tool input and result notifications, tools/call
// proxied to the server), draws the tool's result and switches metric through the app-only tool.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import type { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { startTestServer } from "./fixtures/mcp_server.ts";
import { Browser, chromiumAvailable, type Page } from "./fixtures/cdp_browser.ts";
import { MCP_APP_MIME_TYPE, SENSOR_APP_URI } from "../lib/mcp/apps/mod.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url);

/** The host side of the Apps protocol, run in the test page. */
const HOST_SCRIPT = `
window.__log = [];
window.__calls = [];
const frame = document.createElement("iframe");
frame.style.cssText = "width: 720px; height: 560px; border: 1px solid #999";
frame.setAttribute("sandbox", "allow-scripts allow-same-origin");
const post = (msg) => frame.contentWindow.postMessage({ jsonrpc: "2.0", ...msg }, "*");
window.__post = post;
window.__deliver = (id, result) => post({ id, result });
window.addEventListener("message", (e) => {
  if (e.source !== frame.contentWindow) return;
  const m = e.data;
  window.__log.push(m.method ?? "response");
  if (m.method === "ui/initialize") {
    window.__init = m.params;
    post({ id: m.id, result: {
      protocolVersion: "2026-01-26",
      hostInfo: { name: "test-host", version: "1.0.0" },
      hostCapabilities: { serverTools: {} },
      hostContext: { theme: "light", displayMode: "inline", containerDimensions: { width: 720, maxHeight: 800 } },
    } });
  } else if (m.method === "ui/notifications/initialized") {
    post({ method: "ui/notifications/tool-input", params: { arguments: window.__toolArgs } });
    post({ method: "ui/notifications/tool-result", params: window.__toolResult });
  } else if (m.method === "tools/call") {
    window.__calls.push({ id: m.id, params: m.params });
  }
});
document.body.append(frame);
frame.srcdoc = window.__html;
`;

/** Answers the view's pending tools/call requests through the real MCP server. */
async function proxyCalls(page: Page, client: Client): Promise<string[]> {
  const calls = await page.eval<
    { id: number; params: { name: string; arguments: Record<string, unknown> } }[]
  >(
    "window.__calls.splice(0)",
  );
  for (const c of calls) {
    const result = await client.callTool({ name: c.params.name, arguments: c.params.arguments });
    await page.eval(`window.__deliver(${c.id}, ${JSON.stringify(result)})`);
  }
  return calls.map((c) =>
    `${c.params.name}:${c.params.arguments.metric}:${c.params.arguments.range}`
  );
}

const inFrame = (expr: string) =>
  `(() => { const d = document.querySelector("iframe").contentDocument; return ${expr}; })()`;

Deno.test("the sensor MCP App is linked, listed, read with its MIME type and _meta", async () => {
  await using server = await startTestServer();
  const client = await server.connect();
  const { tools } = await client.listTools() as {
    tools: { name: string; _meta?: Record<string, unknown> }[];
  };
  const byName = new Map(tools.map((t) => [t.name, t]));
  for (const name of ["get_sensor_history", "get_latest_readings"]) {
    deepEqual(
      (byName.get(name)?._meta as { ui?: unknown })?.ui,
      { resourceUri: SENSOR_APP_URI },
      name,
    );
  }
  deepEqual(
    (byName.get("app_sensor_history")?._meta as { ui?: unknown })?.ui,
    { resourceUri: SENSOR_APP_URI, visibility: ["app"] },
    "the app-only tool is hidden from the model",
  );
  const { resources } = await client.listResources() as {
    resources: { uri: string; mimeType?: string }[];
  };
  const listed = resources.find((r) => r.uri === SENSOR_APP_URI);
  ok(listed, "the ui:// resource is listed");
  equal(listed.mimeType, MCP_APP_MIME_TYPE);
  const read = await client.readResource({ uri: SENSOR_APP_URI });
  equal(read.contents.length, 1);
  const c = read.contents[0] as {
    uri: string;
    mimeType: string;
    text: string;
    _meta?: { ui?: unknown };
  };
  equal(c.uri, SENSOR_APP_URI);
  equal(c.mimeType, "text/html;profile=mcp-app");
  deepEqual(c._meta?.ui, { prefersBorder: true, csp: {} });
  match(c.text, /^<!doctype html>/i);
  // Self-contained: hosts give the view no network, so nothing may be loaded from elsewhere.
  ok(
    !/<script[^>]+src=|<link[^>]+href=|https?:\/\/[^"'\s]*\.(js|css)/i.test(c.text),
    "no external files",
  );
  match(c.text, /AmbientCharts/, "the chart code shared with the dashboard is inlined");
  match(c.text, /uPlot/, "uPlot is inlined");
  // The text answer stays for hosts without apps.
  const r = await client.callTool({
    name: "get_sensor_history",
    arguments: {
      sensor_id: 1,
      metric: "co2",
      start: "2024-01-01T00:00:00Z",
      end: "2024-01-01T02:00:00Z",
    },
  });
  const text = (r.content as { type: string; text: string }[]).find((p) => p.type === "text")?.text;
  match(text ?? "", /co2 \[ppm\] of esp32-kitchen/);
});

Deno.test({
  name:
    "the MCP App renders in Chromium inside a host page: handshake, result chart, metric switch",
  ignore: !chromiumAvailable(),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using server = await startTestServer();
    // Recent readings so that the app's 24 h ranges have data.
    await server.db.sql`
      insert into scd30_measurements (time, sensor_id, co2, temperature, humidity)
      select now() - g * interval '1 minute', 1, 600 + (g * 13) % 400, 20 + (g % 20) / 10.0, 45
      from generate_series(1, 180) g`;
    const client = await server.connect();
    const html =
      ((await client.readResource({ uri: SENSOR_APP_URI })).contents[0] as { text: string }).text;
    const args = { sensor_id: 1, metric: "co2", start: "-3h", end: "now" };
    const result = await client.callTool({ name: "get_sensor_history", arguments: args });
    ok(!result.isError);
    const points = (result.structuredContent as { points: unknown[] }).points.length;
    ok(points > 10, `points: ${points}`);

    await using browser = await Browser.launch();
    const page = await browser.newPage();
    await page.viewport(800, 700);
    await page.goto("about:blank");
    await page.eval(
      `window.__html = ${JSON.stringify(html)}; window.__toolArgs = ${
        JSON.stringify(args)
      }; window.__toolResult = ${JSON.stringify(result)}; ${HOST_SCRIPT}; true`,
    );

    // Handshake: ui/initialize with the app's info and capabilities, then initialized.
    await page.waitFor(
      `window.__log.includes("ui/notifications/initialized")`,
      20_000,
      "initialized",
    );
    const init = await page.eval<{ protocolVersion: string; appInfo: { name: string } }>(
      "window.__init",
    );
    equal(init.protocolVersion, "2026-01-26");
    ok(init.appInfo.name);
    // The chart of the tool's result: one drawn point per bucket.
    const drawn = await page.waitFor<number>(
      inFrame(
        `d.querySelector("#chart canvas") && Number(d.getElementById("chart").dataset.points)`,
      ),
      20_000,
      "the history chart",
    );
    equal(drawn, points);
    match(await page.eval<string>(inFrame(`d.getElementById("title").textContent`)), /CO₂/);

    // The view asks the app-only tool for the sensor's metrics; the host proxies it.
    await page.waitFor("window.__calls.length > 0", 20_000, "the view's tools/call");
    const first = await proxyCalls(page, client);
    match(first[0], /^app_sensor_history:co2:/);
    await page.waitFor(
      inFrame(`d.querySelector('button[data-metric="temperature"]')`),
      20_000,
      "metric buttons",
    );

    // Hover shows values in the legend.
    const box = await page.eval<{ x: number; y: number }>(inFrame(`(() => {
      const f = document.querySelector("iframe").getBoundingClientRect();
      const r = d.querySelector("#chart .u-over").getBoundingClientRect();
      return { x: f.left + 1 + r.left + r.width * 0.9, y: f.top + 1 + r.top + r.height / 2 }; })()`));
    await page.send("Input.dispatchMouseEvent", { type: "mouseMoved", x: box.x, y: box.y });
    const legend = await page.waitFor<string>(
      inFrame(
        `(() => { const v = d.querySelector("#chart .u-legend .u-series:nth-child(2) .u-value")?.textContent; return v && v !== "–" ? v : ""; })()`,
      ),
      10_000,
      "a hover value",
    );
    match(legend, /ppm/);

    // Switching the metric calls the app-only tool and redraws.
    await page.eval(inFrame(`d.querySelector('button[data-metric="temperature"]').click()`));
    await page.waitFor("window.__calls.length > 0", 20_000, "the metric switch's tools/call");
    const second = await proxyCalls(page, client);
    match(second[0], /^app_sensor_history:temperature:/);
    await page.waitFor(
      inFrame(
        `/Temperature/.test(d.getElementById("title").textContent) && Number(d.getElementById("chart").dataset.points) > 0`,
      ),
      20_000,
      "the temperature chart",
    );
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot(new URL("mcp-app-history.png", ARTIFACTS).pathname);

    // A get_latest_readings result is drawn as tiles, one per reading.
    const latest = await client.callTool({ name: "get_latest_readings", arguments: {} });
    const readings = (latest.structuredContent as { readings: unknown[] }).readings.length;
    await page.eval(
      `window.__post({ method: "ui/notifications/tool-result", params: ${
        JSON.stringify(latest)
      } })`,
    );
    const tiles = await page.waitFor<number>(
      inFrame(`d.querySelectorAll("#tiles button.metric").length`),
      20_000,
      "tiles",
    );
    equal(tiles, readings);
    await page.screenshot(new URL("mcp-app-latest.png", ARTIFACTS).pathname);
    deepEqual(page.errors, [], "no errors in the view");
  },
});
