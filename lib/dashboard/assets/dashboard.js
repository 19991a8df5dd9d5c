// The dashboard page: polls the overview every few seconds and updates the cards in place (so
// focus and scroll stay put), redraws sparklines every minute, and draws the history chart for
// the chosen sensor, metric and range. See README, "Dashboard".
"use strict";

(function () {
  const C = globalThis.AmbientCharts;
  const POLL_MS = 5000;
  const SPARK_MS = 60000;
  const DAY_S = 86400;
  const HOUR_S = 3600;
  const $ = (id) => document.getElementById(id);
  const state = {
    overview: null,
    sparks: null,
    structure: "",
    sel: { sensorId: null, metric: null, range: "24h" },
    historyAt: 0,
    /** The first chart's request (the server picks the sensor) is under way. */
    picking: false,
    history: null,
    failures: 0,
  };

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children.flat()) {
      if (c !== null && c !== undefined) e.append(c.nodeType ? c : String(c));
    }
    return e;
  }

  async function getJson(path) {
    const r = await fetch(path, { headers: { accept: "application/json" }, cache: "no-store" });
    if (r.status === 401) {
      location.assign("/login");
      throw new Error("signed out");
    }
    const body = await r.json().catch(() => ({}));
    if (!r.ok) {
      throw Object.assign(new Error(body.error ?? `HTTP ${r.status}`), { status: r.status });
    }
    return body;
  }

  function deviceLabel(d) {
    return d.name ?? d.device_id;
  }

  function rooms(devices) {
    const map = new Map();
    for (const d of devices) {
      const room = d.location || "No room";
      if (!map.has(room)) map.set(room, []);
      map.get(room).push(d);
    }
    return [...map].sort((a, b) => a[0].localeCompare(b[0]));
  }

  function structureKey(o) {
    return JSON.stringify(o.devices.map((d) => [
      d.device_id,
      d.location,
      d.sensors.map((s) => [s.sensor_id, s.readings.map((r) => r.metric)]),
    ]));
  }

  const id = (...parts) =>
    parts.join(":").replace(/[^A-Za-z0-9:_-]/g, (c) => `_${c.charCodeAt(0)}`);

  function buildRooms(o) {
    const box = $("rooms");
    const cards = rooms(o.devices).map(([room, devices]) =>
      el(
        "article",
        { class: "card room", "aria-label": room },
        el("h3", {}, room),
        devices.map((d) =>
          el(
            "div",
            { class: "device", "data-device": d.device_id },
            el(
              "div",
              { class: "device-head" },
              el("span", { class: "device-name" }, deviceLabel(d)),
              el("span", { class: "badge", "data-f": id("health", d.device_id) }),
            ),
            el("div", { class: "meta", "data-f": id("meta", d.device_id) }),
            el(
              "ul",
              { class: "metrics" },
              d.sensors.flatMap((s) =>
                s.readings.map((r) =>
                  el(
                    "li",
                    {},
                    el(
                      "button",
                      {
                        type: "button",
                        class: "metric",
                        "data-f": id("m", s.sensor_id, r.metric),
                        "data-sensor": String(s.sensor_id),
                        "data-metric": r.metric,
                        onclick: () => {
                          selectHistory(s.sensor_id, r.metric);
                          $("history").focus();
                        },
                      },
                      el(
                        "span",
                        {},
                        el(
                          "span",
                          { class: "label" },
                          `${C.metricLabel(r.metric)} · ${s.sensor_type}`,
                        ),
                        el("br"),
                        el("span", { class: "value" }),
                        " ",
                        el("span", { class: "band" }),
                        el("br"),
                        el("span", { class: "age" }),
                      ),
                      el("span", { class: "spark", "aria-hidden": "true" }),
                    ),
                  )
                )
              ),
            ),
          )
        ),
      )
    );
    box.replaceChildren(...cards);
    if (!cards.length) {
      box.replaceChildren(
        el(
          "p",
          { class: "muted" },
          "No devices yet. They appear here when they publish over MQTT.",
        ),
      );
    }
  }

  function field(name) {
    return document.querySelector(`[data-f="${name}"]`);
  }

  function updateRooms(o) {
    for (const d of o.devices) {
      const badge = field(id("health", d.device_id));
      if (badge) {
        badge.textContent = d.health;
        badge.className = `badge health-${d.health}`;
        badge.dataset.health = d.health;
        badge.setAttribute("aria-label", `status ${d.health}`);
      }
      const meta = field(id("meta", d.device_id));
      if (meta) {
        const parts = [
          `last seen ${C.formatAge(d.quiet_for_s)}`,
          d.firmware ? `firmware ${d.firmware}` : "firmware unknown",
        ];
        if (d.errors_24h) {
          parts.push(`${d.errors_24h} error${d.errors_24h === 1 ? "" : "s"} in 24 h`);
        }
        meta.textContent = parts.join(" · ");
        meta.title = d.last_seen ? new Date(d.last_seen).toLocaleString() : "";
      }
      for (const s of d.sensors) {
        for (const r of s.readings) {
          const b = field(id("m", s.sensor_id, r.metric));
          if (!b) continue;
          const value = C.formatValue(r.value, r.unit);
          b.querySelector(".value").textContent = value;
          b.querySelector(".age").textContent = C.formatAge(r.age_s);
          b.classList.toggle("stale", r.age_s > o.threshold_s);
          const band = b.querySelector(".band");
          if (r.metric === "co2") {
            const cb = C.co2Band(r.value);
            band.textContent = cb.label;
            band.className = `band badge band-${cb.key}`;
          } else {
            band.textContent = "";
            band.className = "band";
          }
          b.setAttribute(
            "aria-label",
            `${C.metricLabel(r.metric)} ${value}${
              r.metric === "co2" ? `, ${band.textContent}` : ""
            }, ${C.formatAge(r.age_s)}. Show its history.`,
          );
        }
      }
    }
  }

  function drawSparks() {
    if (!state.sparks) return;
    const end = Date.parse(state.overview?.now ?? new Date().toISOString()) / 1000;
    for (const b of document.querySelectorAll("button.metric")) {
      const box = b.querySelector(".spark");
      const line = state.sparks.sensors[b.dataset.sensor]?.[b.dataset.metric];
      if (!line || !line.t.length) {
        C.clear(box);
        continue;
      }
      C.sparkline(box, line.t, line.v, {
        bucketSeconds: line.b,
        start: end - DAY_S - HOUR_S,
        end,
      });
    }
    performance.mark("ambient:sparklines");
  }

  function updateEvents(o) {
    const list = $("events");
    if (!o.events.length) {
      list.replaceChildren(el("li", { class: "muted" }, "Nothing in the last 7 days."));
      return;
    }
    list.replaceChildren(...o.events.map((e) =>
      el(
        "li",
        {},
        el("time", { datetime: e.time }, new Date(e.time).toLocaleString()),
        el(
          "span",
          {},
          el("span", { class: `badge kind-${e.kind}` }, e.kind),
          " ",
          e.kind === "error" || e.kind === "status" ? `${e.device_id}: ${e.text}` : e.text,
        ),
      )
    ));
  }

  function updateCollector(o) {
    const box = $("collector");
    const c = o.collector;
    if (!c) {
      box.replaceChildren(el(
        "p",
        { class: "muted" },
        "The collector runs in its own process (deno task collect); its counts are in its log.",
      ));
      return;
    }
    const kb = (n) => `${(n / 1024).toLocaleString(undefined, { maximumFractionDigits: 1 })} KB`;
    const rows = [
      ["Received", c.received?.toLocaleString()],
      ["Stored", c.stored?.toLocaleString()],
      ["Rejected", c.rejected?.toLocaleString()],
      ["Journal", `${kb(c.journalBytes ?? 0)} not yet written`],
      ["Lag", `${Math.round((c.lagMs ?? 0) / 1000)} s`],
      ["Database", c.dbUp ? "reachable" : "unreachable"],
      ["Broker", c.mqttConnected ? "connected" : "disconnected"],
    ];
    box.replaceChildren(
      el(
        "dl",
        { class: "stats" },
        rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v ?? "–")]),
      ),
    );
  }

  function sensorsOf(o) {
    return o.devices.flatMap((d) =>
      d.sensors.filter((s) => s.readings.length).map((s) => ({ d, s }))
    );
  }

  function fillSelectors(o) {
    const sel = state.sel;
    const all = sensorsOf(o);
    if (!all.length || (sel.sensorId === null && state.picking)) return;
    if (!all.some(({ s }) => s.sensor_id === sel.sensorId)) {
      const co2 = all.find(({ d, s }) =>
        d.health !== "offline" && s.readings.some((r) =>
          r.metric === "co2"
        )
      ) ?? all[0];
      sel.sensorId = co2.s.sensor_id;
      sel.metric = null;
    }
    const sensorSel = $("h-sensor");
    sensorSel.replaceChildren(
      ...all.map(({ d, s }) =>
        el(
          "option",
          { value: String(s.sensor_id), selected: s.sensor_id === sel.sensorId },
          `${deviceLabel(d)} · ${s.sensor_type}${d.location ? ` (${d.location})` : ""}`,
        )
      ),
    );
    const current = all.find(({ s }) => s.sensor_id === sel.sensorId).s;
    const metrics = current.readings.map((r) => r.metric);
    if (!metrics.includes(sel.metric)) sel.metric = metrics.includes("co2") ? "co2" : metrics[0];
    $("h-metric").replaceChildren(
      ...metrics.map((m) =>
        el("option", { value: m, selected: m === sel.metric }, C.metricLabel(m))
      ),
    );
  }

  // The first chart is the server's pick (sensor_id and metric left out), requested at once
  // with the overview rather than after it: the page is complete one round trip sooner.
  async function loadHistory() {
    const { sensorId, metric, range } = state.sel;
    const pick = sensorId === null;
    if (pick && state.picking) return;
    state.picking = pick;
    state.historyAt = Date.now();
    performance.mark("ambient:history-request");
    const box = $("h-chart");
    box.setAttribute("aria-busy", "true");
    try {
      const q = new URLSearchParams(
        pick ? { range } : { sensor_id: String(sensorId), metric, range },
      );
      const h = await getJson(`/dashboard/api/history?${q}`);
      performance.mark("ambient:history-response");
      if (pick) {
        if (state.sel.sensorId !== null || state.sel.range !== range) return;
        state.sel.sensorId = h.sensor.sensor_id;
        state.sel.metric = h.metric;
        if (state.overview) fillSelectors(state.overview);
      } else if (
        state.sel.sensorId !== sensorId || state.sel.metric !== metric || state.sel.range !== range
      ) return;
      state.history = h;
      C.historyChart(box, h);
      performance.mark("ambient:history");
      box.dataset.range = range;
      box.dataset.sensor = String(h.sensor.sensor_id);
      box.dataset.metric = h.metric;
      box.setAttribute(
        "aria-label",
        `${C.metricLabel(h.metric)} of ${
          h.sensor.device_name ?? h.sensor.device_id
        }, last ${range}`,
      );
      $("h-info").textContent = C.describeHistory(h);
    } catch (error) {
      $("h-info").textContent = pick && error.status === 404
        ? "No readings yet: the chart appears with the first one."
        : `Could not load the history: ${error.message}`;
    } finally {
      if (pick) state.picking = false;
      box.removeAttribute("aria-busy");
    }
  }

  function selectHistory(sensorId, metric) {
    state.sel.sensorId = sensorId;
    state.sel.metric = metric;
    if (state.overview) fillSelectors(state.overview);
    loadHistory();
  }

  async function poll() {
    try {
      const o = await getJson("/dashboard/api/overview");
      state.overview = o;
      state.failures = 0;
      $("logout").hidden = !o.auth;
      const key = structureKey(o);
      if (key !== state.structure) {
        state.structure = key;
        fillSelectors(o);
        if (!state.historyAt || (state.sel.sensorId === null && !state.picking)) loadHistory();
        buildRooms(o);
        performance.mark("ambient:rooms");
        drawSparks();
      }
      updateRooms(o);
      updateEvents(o);
      updateCollector(o);
      const counts = { online: 0, silent: 0, offline: 0 };
      for (const d of o.devices) counts[d.health] = (counts[d.health] ?? 0) + 1;
      $("status").textContent =
        `${o.devices.length} devices: ${counts.online} online, ${counts.silent} silent, ${counts.offline} offline · updated ${
          new Date(o.now).toLocaleTimeString()
        }`;
      document.body.dataset.updated = o.now;
      if (Date.now() - state.historyAt > SPARK_MS && state.sel.range === "24h") loadHistory();
    } catch (error) {
      state.failures++;
      $("status").textContent = `Cannot reach the server (${error.message}); retrying…`;
    }
    setTimeout(poll, state.failures ? Math.min(30000, POLL_MS * 2 ** state.failures) : POLL_MS);
  }

  async function pollSparks() {
    try {
      state.sparks = await getJson("/dashboard/api/sparklines");
      drawSparks();
    } catch {
      // the next round tries again; the values above still update
    }
    setTimeout(pollSparks, SPARK_MS);
  }

  $("h-sensor").addEventListener("change", (e) => selectHistory(Number(e.target.value), null));
  $("h-metric").addEventListener(
    "change",
    (e) => selectHistory(state.sel.sensorId, e.target.value),
  );
  for (const b of document.querySelectorAll("#h-ranges button")) {
    b.addEventListener("click", () => {
      state.sel.range = b.dataset.range;
      for (const o of document.querySelectorAll("#h-ranges button")) {
        o.setAttribute("aria-pressed", String(o === b));
      }
      loadHistory();
    });
  }
  // Chart colours come from the stylesheet when drawn: redraw when the theme changes.
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
    if (state.history) C.historyChart($("h-chart"), state.history);
  });
  loadHistory();
  poll();
  pollSparks();
})();
