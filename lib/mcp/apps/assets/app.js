// deno-lint-ignore-file no-window no-window-prefix
// The MCP App view (README, "MCP Apps"): speaks the Apps handshake with the host over
// postMessage JSON-RPC (ui/initialize, then tool input and result notifications), draws
// get_sensor_history results as an interactive chart and get_latest_readings results as tiles,
// and switches metric or range by calling the app-only tool app_sensor_history through the host.
"use strict";

(function () {
  const C = globalThis.AmbientCharts;
  const APP_TOOL = "app_sensor_history";
  const RANGES = ["24h", "7d", "30d", "1y"];
  const $ = (id) => document.getElementById(id);
  const pending = new Map();
  let nextId = 1;
  const view = { history: null, metrics: null, range: "24h", args: {} };

  function send(msg) {
    window.parent.postMessage({ jsonrpc: "2.0", ...msg }, "*");
  }

  function request(method, params) {
    const id = nextId++;
    send({ id, method, params });
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      setTimeout(() => {
        if (pending.delete(id)) reject(new Error(`${method}: no answer from the host`));
      }, 30000);
    });
  }

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
    }
    return e;
  }

  function status(text) {
    $("status").textContent = text;
  }

  async function callAppTool(args) {
    const r = await request("tools/call", { name: APP_TOOL, arguments: args });
    if (r.isError) {
      throw new Error(r.content?.map((c) => c.text).join(" ") || "the tool failed");
    }
    return r.structuredContent;
  }

  async function showHistory(args) {
    status("Loading…");
    try {
      const h = await callAppTool(args);
      view.metrics = h.metrics ?? view.metrics;
      view.range = args.range;
      renderHistory(h);
      status("");
    } catch (error) {
      status(`Could not load: ${error.message}`);
    }
  }

  function renderHistory(h) {
    view.history = h;
    const s = h.sensor;
    $("title").textContent = `${C.metricLabel(h.metric)} · ${s.device_name ?? s.device_id}${
      s.location ? ` (${s.location})` : ""
    }`;
    const metrics = view.metrics ?? [h.metric];
    $("controls").replaceChildren(
      el(
        "div",
        { class: "ranges", role: "group", "aria-label": "Metric" },
        metrics.map((m) =>
          el("button", {
            type: "button",
            "aria-pressed": String(m === h.metric),
            "data-metric": m,
            onclick: () =>
              showHistory({ sensor_id: s.sensor_id, metric: m, range: view.range ?? "24h" }),
          }, C.metricLabel(m))
        ),
      ),
      el(
        "div",
        { class: "ranges", role: "group", "aria-label": "Range" },
        RANGES.map((r) =>
          el("button", {
            type: "button",
            "aria-pressed": String(r === view.range),
            "data-range": r,
            onclick: () => showHistory({ sensor_id: s.sensor_id, metric: h.metric, range: r }),
          }, r)
        ),
      ),
    );
    const box = $("chart");
    box.hidden = false;
    C.historyChart(box, h, { height: 260 });
    $("info").textContent = C.describeHistory(h);
  }

  function renderReadings(readings) {
    $("title").textContent = "Current readings";
    view.history = null;
    view.metrics = null;
    $("controls").replaceChildren();
    C.clear($("chart"));
    $("chart").hidden = true;
    const byRoom = new Map();
    for (const r of readings) {
      const room = r.location || "No room";
      if (!byRoom.has(room)) byRoom.set(room, []);
      byRoom.get(room).push(r);
    }
    $("tiles").replaceChildren(
      ...[...byRoom].sort((a, b) => a[0].localeCompare(b[0])).map(([room, list]) =>
        el(
          "article",
          { class: "card room" },
          el("h3", {}, room),
          el(
            "ul",
            { class: "metrics" },
            list.map((r) => {
              const band = r.metric === "co2" ? C.co2Band(r.value) : null;
              return el(
                "li",
                {},
                el(
                  "button",
                  {
                    type: "button",
                    class: `metric${r.stale ? " stale" : ""}`,
                    "data-sensor": String(r.sensor_id),
                    "data-metric": r.metric,
                    onclick: () =>
                      showHistory({ sensor_id: r.sensor_id, metric: r.metric, range: "24h" }),
                  },
                  el(
                    "span",
                    {},
                    el(
                      "span",
                      { class: "label" },
                      `${C.metricLabel(r.metric)} · ${r.device_name ?? r.device_id}`,
                    ),
                    el("br"),
                    el("span", { class: "value" }, C.formatValue(r.value, r.unit)),
                    " ",
                    band ? el("span", { class: `badge band-${band.key}` }, band.label) : null,
                    el("br"),
                    el("span", { class: "age" }, C.formatAge(r.age_s)),
                  ),
                ),
              );
            }),
          ),
        )
      ),
    );
    $("info").textContent = "Choose a value to see its history.";
  }

  function onToolResult(result) {
    const sc = result?.structuredContent;
    if (result?.isError || !sc) {
      const text = (result?.content ?? []).filter((c) => c.type === "text").map((c) => c.text).join(
        "\n",
      );
      $("title").textContent = "Sensor data";
      $("info").textContent = text || "The tool returned nothing to draw.";
      return;
    }
    if (Array.isArray(sc.points)) {
      $("tiles").replaceChildren();
      const range = Object.entries({ "24h": 1, "7d": 7, "30d": 30, "1y": 365 }).find(([, d]) =>
        Math.abs(Date.parse(sc.end) - Date.parse(sc.start) - d * 86400000) < 3600000
      );
      // A period other than the offered ranges: no range button is pressed until one is chosen.
      view.range = range ? range[0] : null;
      renderHistory(sc);
      // The metric buttons: the sensor's metrics come with the app tool's answer.
      callAppTool({ sensor_id: sc.sensor.sensor_id, metric: sc.metric, range: view.range ?? "24h" })
        .then((h) => {
          if (view.history?.sensor.sensor_id !== h.sensor.sensor_id) return;
          view.metrics = h.metrics;
          renderHistory(view.history);
        })
        .catch(() => {});
    } else if (Array.isArray(sc.readings)) {
      renderReadings(sc.readings);
    }
  }

  function applyContext(ctx) {
    if (ctx?.theme === "dark" || ctx?.theme === "light") {
      document.documentElement.dataset.theme = ctx.theme;
      document.documentElement.style.colorScheme = ctx.theme;
    }
  }

  window.addEventListener("message", (event) => {
    if (event.source !== window.parent) return;
    const m = event.data;
    if (!m || m.jsonrpc !== "2.0") return;
    if (m.id !== undefined && m.method === undefined) {
      const p = pending.get(m.id);
      if (!p) return;
      pending.delete(m.id);
      if (m.error) p.reject(new Error(m.error.message ?? "error"));
      else p.resolve(m.result);
      return;
    }
    if (m.id !== undefined) {
      // Requests from the host: teardown and ping need an (empty) answer.
      if (m.method === "ui/resource-teardown" || m.method === "ping") {
        send({ id: m.id, result: {} });
      } else send({ id: m.id, error: { code: -32601, message: `Method not found: ${m.method}` } });
      return;
    }
    if (m.method === "ui/notifications/tool-input") view.args = m.params?.arguments ?? {};
    else if (m.method === "ui/notifications/tool-result") onToolResult(m.params);
    else if (m.method === "ui/notifications/host-context-changed") applyContext(m.params);
    else if (m.method === "ui/notifications/tool-cancelled") status("The tool call was cancelled.");
  });

  // Chart colours come from the stylesheet when drawn: redraw when the theme changes.
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (view.history) renderHistory(view.history);
  });

  let lastSize = "";
  new ResizeObserver(() => {
    const size = {
      width: Math.ceil(document.documentElement.scrollWidth),
      height: Math.ceil(document.documentElement.scrollHeight),
    };
    const key = `${size.width}x${size.height}`;
    if (key === lastSize) return;
    lastSize = key;
    send({ method: "ui/notifications/size-changed", params: size });
  }).observe(document.body);

  (async () => {
    try {
      const init = await request("ui/initialize", {
        protocolVersion: "2026-01-26",
        appInfo: { name: "ambient-sensors-chart", version: "1.0.0" },
        appCapabilities: { availableDisplayModes: ["inline"] },
      });
      applyContext(init?.hostContext);
      send({ method: "ui/notifications/initialized", params: {} });
      status("");
    } catch (error) {
      status(`This view needs an MCP Apps host (${error.message}).`);
    }
  })();
})();
