// Chart code shared by the dashboard page and the MCP App (README, "Dashboard"): formatting,
// CO2 bands, gap-aware bucket alignment, sparklines and the interactive history chart (uPlot).
// Runs in the browser; uPlot is the global from uPlot.iife.min.js.
"use strict";

(function (root) {
  /** Where the server aligns its buckets (a Monday, 00:00 UTC), in unix seconds. */
  const BUCKET_ORIGIN_S = Date.UTC(2000, 0, 3) / 1000;

  /** CO2 bands in ppm: the upper limit of each band and its name. */
  const CO2_BANDS = [
    { max: 800, key: "good", label: "Good" },
    { max: 1000, key: "fair", label: "Moderate" },
    { max: 1400, key: "poor", label: "Poor" },
    { max: Infinity, key: "bad", label: "Very poor" },
  ];

  const LABELS = {
    co2: "CO₂",
    temperature: "Temperature",
    humidity: "Humidity",
    pressure: "Pressure",
  };

  function metricLabel(metric) {
    return LABELS[metric] ?? metric.charAt(0).toUpperCase() + metric.slice(1);
  }

  /** The CO2 band of a value in ppm. */
  function co2Band(ppm) {
    return CO2_BANDS.find((b) => ppm < b.max) ?? CO2_BANDS[CO2_BANDS.length - 1];
  }

  function decimals(unit, v) {
    if (unit === "ppm") return 0;
    if (unit === "hPa") return 1;
    return Math.abs(v) >= 100 ? 0 : 1;
  }

  /** A value with its unit: "812 ppm", "21.5 °C", "45 %RH". */
  function formatValue(v, unit) {
    if (v === null || v === undefined || !Number.isFinite(v)) return "–";
    const text = v.toLocaleString(undefined, {
      minimumFractionDigits: decimals(unit, v),
      maximumFractionDigits: decimals(unit, v),
    });
    return unit ? `${text} ${unit}` : text;
  }

  /** "just now", "40 s ago", "5 min ago", "3 h ago", "2 d ago". */
  function formatAge(s) {
    if (s === null || s === undefined) return "never";
    if (s < 5) return "just now";
    if (s < 60) return `${Math.round(s)} s ago`;
    if (s < 3600) return `${Math.round(s / 60)} min ago`;
    if (s < 172800) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  /**
   * One slot per bucket from `start` to `end` (ISO strings), the history's points placed in their
   * slots and null in the others, so missing data is drawn as a gap, never interpolated.
   * Returns uPlot data: [times (unix s), avg, min, max].
   */
  function alignBuckets(points, start, end, bucketSeconds) {
    const b = bucketSeconds;
    const s = Date.parse(start) / 1000;
    const e = Date.parse(end) / 1000;
    const first = BUCKET_ORIGIN_S + Math.floor((s - BUCKET_ORIGIN_S) / b) * b;
    const n = Math.max(0, Math.ceil((e - first) / b));
    const t = new Array(n), avg = new Array(n).fill(null);
    const min = new Array(n).fill(null), max = new Array(n).fill(null);
    for (let i = 0; i < n; i++) t[i] = first + i * b;
    for (const p of points) {
      const i = Math.round((Date.parse(p.time) / 1000 - first) / b);
      if (i < 0 || i >= n) continue;
      avg[i] = p.avg;
      min[i] = p.min;
      max[i] = p.max;
    }
    return [t, avg, min, max];
  }

  /** Inserts a null wherever two samples are further apart than `gapS`, so uPlot breaks the line. */
  function withGaps(t, v, gapS) {
    const ot = [], ov = [];
    for (let i = 0; i < t.length; i++) {
      if (i > 0 && t[i] - t[i - 1] > gapS) {
        ot.push(t[i - 1] + gapS);
        ov.push(null);
      }
      ot.push(t[i]);
      ov.push(v[i]);
    }
    return [ot, ov];
  }

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  const BAND_FILL = {
    good: "--band-good",
    fair: "--band-fair",
    poor: "--band-poor",
    bad: "--band-bad",
  };

  /** A uPlot hook drawing the CO2 bands behind the series. */
  function co2BandsHook(u) {
    const ctx = u.ctx;
    const { left, top, width, height } = u.bbox;
    let lo = 0;
    ctx.save();
    for (const band of CO2_BANDS) {
      const hi = Math.min(band.max, 100000);
      const y1 = u.valToPos(hi, "y", true), y0 = u.valToPos(lo, "y", true);
      const yTop = Math.max(top, Math.min(y1, y0)),
        yBottom = Math.min(top + height, Math.max(y1, y0));
      if (yBottom > yTop) {
        ctx.fillStyle = cssVar(BAND_FILL[band.key], "transparent");
        ctx.fillRect(left, yTop, width, yBottom - yTop);
      }
      lo = band.max;
    }
    ctx.restore();
  }

  /**
   * uPlot draws no line through a bucket whose neighbours are gaps, and points only where they
   * are sparse: the indices of such lone buckets, so they show as dots (null: uPlot's choice).
   */
  function loneBuckets(u, seriesIdx, show) {
    if (show) return null;
    const v = u.data[seriesIdx];
    const out = [];
    for (let i = 0; i < v.length; i++) {
      if (v[i] !== null && v[i - 1] == null && v[i + 1] == null) out.push(i);
    }
    return out.length ? out : null;
  }

  const charts = new WeakMap();

  function observeSize(el, u, height) {
    const ro = new ResizeObserver(() => {
      const w = Math.floor(el.clientWidth);
      if (w > 0 && w !== u.width) u.setSize({ width: w, height });
    });
    ro.observe(el);
    charts.set(el, { u, ro });
  }

  /** Removes the chart drawn into `el`, if any. */
  function clear(el) {
    const c = charts.get(el);
    if (c) {
      c.ro.disconnect();
      c.u.destroy();
      charts.delete(el);
    }
    el.replaceChildren();
  }

  /** Sparkline drawing box: stretched to the element's size, strokes kept at screen width. */
  const SPARK_W = 1000, SPARK_H = 100;

  /**
   * The SVG markup of a small line chart without axes of one metric's last 24 h (`t` unix
   * seconds, `v` averages) between `opts.start` and `opts.end`, broken where buckets are missing
   * (a lone bucket is a dot), filled below. Markup, not a canvas: a page of 50 devices has 250 of
   * them, and SVG needs no canvas per sparkline, no width read before drawing, no redraw when
   * the box resizes or the theme changes (colours come from the stylesheet).
   */
  function sparklineSvg(t, v, opts) {
    const [gt, gv] = withGaps(t, v, (opts.bucketSeconds ?? 3600) * 1.5);
    let lo = Infinity, hi = -Infinity;
    for (const x of gv) {
      if (x === null) continue;
      if (x < lo) lo = x;
      if (x > hi) hi = x;
    }
    const t0 = opts.start ?? gt[0], t1 = opts.end ?? gt[gt.length - 1];
    const x = (s) => (t1 > t0 ? ((s - t0) / (t1 - t0)) * SPARK_W : SPARK_W / 2).toFixed(1);
    const y = (s) =>
      (hi > lo ? (1 - (s - lo) / (hi - lo)) * (SPARK_H - 10) + 5 : SPARK_H / 2)
        .toFixed(1);
    let line = "", area = "", dots = "", run = [];
    const flush = () => {
      if (run.length === 1) dots += `M${x(run[0][0])} ${y(run[0][1])}h0`;
      else if (run.length > 1) {
        const d = run.map(([a, b], i) => `${i ? "L" : "M"}${x(a)} ${y(b)}`).join("");
        line += d;
        area += `${d}L${x(run[run.length - 1][0])} ${SPARK_H}L${x(run[0][0])} ${SPARK_H}Z`;
      }
      run = [];
    };
    for (let i = 0; i < gt.length; i++) {
      if (gv[i] === null) flush();
      else run.push([gt[i], gv[i]]);
    }
    flush();
    return `<svg viewBox="0 0 ${SPARK_W} ${SPARK_H}" preserveAspectRatio="none" ` +
      `focusable="false"><path class="area" d="${area}"/><path class="line" d="${line}"/>` +
      `<path class="dot" d="${dots}"/></svg>`;
  }

  /** Draws a sparkline (see `sparklineSvg`) into `el`. */
  function sparkline(el, t, v, opts = {}) {
    clear(el);
    el.innerHTML = sparklineSvg(t, v, opts);
    return el.firstChild;
  }

  /**
   * The interactive history chart: the average per bucket with min and max as thin lines, gaps
   * where buckets hold no readings, values on hover (legend), drag to zoom, double-click to
   * reset. `h` has the shape of get_sensor_history's structured result. CO2 gets its bands.
   */
  function historyChart(el, h, opts = {}) {
    clear(el);
    const data = alignBuckets(h.points, h.start, h.end, h.bucket_seconds);
    const unit = h.unit ?? "";
    const fmt = (_u, v) => (v === null || v === undefined ? "–" : formatValue(v, h.unit));
    const text = cssVar("--text", "#111");
    const grid = cssVar("--grid", "rgba(0,0,0,.08)");
    const height = opts.height ?? 300;
    const axis = { stroke: text, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    const u = new uPlot(
      {
        width: Math.max(200, Math.floor(el.clientWidth)),
        height,
        cursor: { drag: { x: true, y: false }, points: { size: 6 } },
        scales: { x: { time: true } },
        axes: [axis, {
          ...axis,
          size: 60,
          values: (_u, vals) => vals.map((v) => formatValue(v, null)),
          label: unit,
        }],
        series: [
          {},
          {
            label: `${metricLabel(h.metric)} avg`,
            stroke: cssVar("--accent", "#2563eb"),
            width: 2,
            value: fmt,
            spanGaps: false,
            points: { filter: loneBuckets, size: 5 },
          },
          {
            label: "min",
            stroke: cssVar("--accent-soft", "#ccd"),
            width: 1,
            value: fmt,
            spanGaps: false,
            points: { show: false },
          },
          {
            label: "max",
            stroke: cssVar("--accent-soft", "#ccd"),
            width: 1,
            value: fmt,
            spanGaps: false,
            points: { show: false },
          },
        ],
        // The spread between min and max of each bucket as a light band behind the average.
        bands: [{ series: [3, 2], fill: cssVar("--accent-soft", "rgba(37,99,235,.12)") }],
        hooks: h.metric === "co2" ? { drawClear: [co2BandsHook] } : {},
      },
      data,
      el,
    );
    observeSize(el, u, height);
    el.dataset.slots = String(data[0].length);
    el.dataset.points = String(data[1].filter((v) => v !== null).length);
    el.dataset.bucket = h.bucket;
    el.dataset.start = h.start;
    el.dataset.end = h.end;
    return u;
  }

  /** A one-line summary of a history for screen readers and hosts: avg, min, max, gaps. */
  function describeHistory(h) {
    if (!h.points.length) return "No readings in this period.";
    let sum = 0, n = 0, lo = Infinity, hi = -Infinity;
    for (const p of h.points) {
      sum += p.avg * p.count;
      n += p.count;
      lo = Math.min(lo, p.min);
      hi = Math.max(hi, p.max);
    }
    const slots = alignBuckets(h.points, h.start, h.end, h.bucket_seconds)[0].length;
    const missing = slots - h.points.length;
    return `${metricLabel(h.metric)}: average ${formatValue(sum / n, h.unit)}, lowest ${
      formatValue(lo, h.unit)
    }, highest ${
      formatValue(hi, h.unit)
    }; ${h.points.length} of ${slots} ${h.bucket} buckets have readings` +
      (missing > 0 ? ` (${missing} without: shown as gaps).` : ".");
  }

  root.AmbientCharts = {
    CO2_BANDS,
    metricLabel,
    co2Band,
    formatValue,
    formatAge,
    alignBuckets,
    sparkline,
    sparklineSvg,
    historyChart,
    describeHistory,
    clear,
  };
})(globalThis);
