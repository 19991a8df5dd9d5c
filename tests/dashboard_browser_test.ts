// The dashboard in a real browser (headless Chromium over the DevTools protocol) against
// `deno task serve` on a seeded house: devices, values and statuses; a device falling silent
// without a reload; the history chart's points against get_sensor_history; the login; and
// screenshots at phone and desktop widths in tests/artifacts/.
import { deepEqual, equal, match, ok } from "node:assert/strict";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { Browser, chromiumAvailable, type Page } from "./fixtures/cdp_browser.ts";
import { ROOT, startSeededServe } from "./fixtures/dashboard_server.ts";
import { rawRequest } from "./fixtures/mcp_raw_http.ts";
import { freePort } from "./fixtures/mcp_child.ts";
import { writeSelfSignedCert } from "./fixtures/tls_cert.ts";

const ARTIFACTS = `${ROOT}/tests/artifacts`;
const ignore = !chromiumAvailable();
if (ignore) console.log("  (dashboard browser tests skipped: no /usr/bin/chromium)");

async function mcpClient(base: string, token?: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${base}/mcp`), {
    requestInit: token ? { headers: { authorization: `Bearer ${token}` } } : undefined,
  });
  const c = new Client({ name: "dashboard-test", version: "1.0.0" });
  await c.connect(transport);
  return c;
}

const devicesShown = `document.querySelectorAll("[data-device]").length`;
const health = (id: string) =>
  `document.querySelector('[data-device="${id}"] .badge[data-health]')?.dataset.health`;
const metricText = (sensor: number, metric: string) =>
  `document.querySelector('button.metric[data-sensor="${sensor}"][data-metric="${metric}"]')?.innerText`;

/** The history chart's slots and points, once drawn for `range`. */
async function chartFor(page: Page, range: string) {
  return await page.waitFor<
    { range: string; points: number; slots: number; start: string; end: string; bucket: string }
  >(
    `(() => { const c = document.getElementById("h-chart");
      return c.dataset.range === ${JSON.stringify(range)} && c.querySelector("canvas")
        ? { range: c.dataset.range, points: Number(c.dataset.points), slots: Number(c.dataset.slots),
            start: c.dataset.start, end: c.dataset.end, bucket: c.dataset.bucket } : null })()`,
    20_000,
    `the ${range} chart`,
  );
}

Deno.test({
  name: "dashboard in Chromium: devices, values, statuses, silence without reload, history points",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await Deno.mkdir(ARTIFACTS, { recursive: true });
    // 20 s without activity makes a device silent: living-1 stays online only while touched.
    await using server = await startSeededServe({ INACTIVITY_THRESHOLD: "20" });
    await server.touch();
    await using browser = await Browser.launch();
    const page = await browser.newPage();
    await page.viewport(1280, 900);
    await page.goto(`${server.base}/`);
    await page.waitFor(`${devicesShown} === 3`, 30_000, "three devices");
    await page.waitFor(`${health("living-1")} === "online"`, 20_000, "living-1 online");
    equal(await page.eval(health("bedroom-2")), "silent");
    equal(await page.eval(health("attic-3")), "offline");

    // Latest values with units, ages and the CO2 band; firmware and rooms.
    const co2 = await page.eval<string>(metricText(1, "co2"));
    match(co2, /1,150 ppm/);
    match(co2, /Poor/, "1150 ppm is in the 1000–1400 band");
    match(co2, /ago|just now/);
    match(await page.eval<string>(metricText(2, "pressure")), /1,013\.2 hPa/);
    match(await page.eval<string>(metricText(3, "co2")), /500 ppm\s+Good[\s\S]*3 d ago/);
    const text = await page.eval<string>("document.body.innerText");
    for (const s of ["Living room", "Bedroom", "Attic", "firmware 2.1.0", "firmware 1.9.3"]) {
      ok(text.includes(s), `page shows ${s}`);
    }
    match(text, /Attic went offline/);
    // bedroom-2's recovery from the seed, unless the monitor has already seen it fall silent.
    match(text, /Bedroom (is back online|went silent)/);
    match(text, /BMP280 read failed/);
    // Sparklines: an SVG per metric with data in the last 24 h, its line drawn.
    await page.waitFor(
      `document.querySelectorAll('button.metric[data-sensor="1"] .spark svg').length === 3`,
      20_000,
      "living-1 sparklines",
    );
    const sparkLine = await page.eval<string>(
      `document.querySelector('button.metric[data-sensor="1"][data-metric="co2"] .spark path.line')
        .getAttribute("d")`,
    );
    match(sparkLine, /^M[\d.]+ [\d.]+(L[\d.]+ [\d.]+)+/, "a line through the hours with readings");

    // History: the default chart is living-1's CO2 over 24 h; its points are get_sensor_history's.
    const client = await mcpClient(server.base);
    try {
      for (const range of ["24h", "7d"]) {
        if (range !== "24h") {
          await page.eval(`document.querySelector('[data-range="${range}"]').click()`);
        }
        const chart = await chartFor(page, range);
        if (range === "24h") {
          // The server's pick for the first chart, shown in the selectors too.
          deepEqual(
            await page.eval(`(() => { const c = document.getElementById("h-chart");
              return [c.dataset.sensor, c.dataset.metric, document.getElementById("h-sensor").value,
                document.getElementById("h-metric").value]; })()`),
            ["1", "co2", "1", "co2"],
          );
        }
        const r = await client.callTool({
          name: "get_sensor_history",
          arguments: {
            sensor_id: 1,
            metric: "co2",
            start: chart.start,
            end: chart.end,
            max_points: 400,
          },
        });
        ok(!r.isError, JSON.stringify(r.content));
        const sc = r.structuredContent as {
          points: unknown[];
          bucket: string;
          bucket_seconds: number;
        };
        equal(chart.bucket, sc.bucket);
        equal(chart.points, sc.points.length, `${range}: one drawn point per bucket with readings`);
        const span = (Date.parse(chart.end) - Date.parse(chart.start)) / 1000;
        ok(Math.abs(chart.slots - span / sc.bucket_seconds) <= 1, `${range}: a slot per bucket`);
        ok(chart.points < chart.slots, `${range}: buckets without readings stay gaps`);
      }
      // 24 h at 5 minutes: the hour without readings is 12 empty buckets between drawn ones.
      await page.eval(`document.querySelector('[data-range="24h"]').click()`);
      await chartFor(page, "24h");
      const gap = await page.eval<number>(`(() => {
        const c = document.getElementById("h-chart");
        return Number(c.dataset.slots) - Number(c.dataset.points); })()`);
      ok(gap >= 12, `gap buckets: ${gap}`);

      // Screenshots: desktop light and dark, phone light and dark.
      for (
        const [w, h, mobile, scheme] of [
          [1280, 900, false, "light"],
          [1280, 900, false, "dark"],
          [390, 844, true, "light"],
          [390, 844, true, "dark"],
        ] as const
      ) {
        await page.viewport(w, h, mobile);
        await page.colorScheme(scheme);
        await new Promise((r) => setTimeout(r, 500));
        await page.screenshot(
          `${ARTIFACTS}/dashboard-${mobile ? "phone" : "desktop"}-${scheme}.png`,
        );
      }
      const overflow = await page.eval<number>(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth",
      );
      equal(overflow, 0, "no sideways scrolling on a phone");
      await page.viewport(1280, 900);

      // Keyboard: the metric tiles are buttons, and choosing one draws its history.
      await page.eval(
        `document.querySelector('button.metric[data-sensor="2"][data-metric="pressure"]').focus()`,
      );
      await page.send("Input.dispatchKeyEvent", {
        type: "keyDown",
        key: "Enter",
        code: "Enter",
        windowsVirtualKeyCode: 13,
        text: "\r",
      });
      await page.send("Input.dispatchKeyEvent", {
        type: "keyUp",
        key: "Enter",
        code: "Enter",
        windowsVirtualKeyCode: 13,
      });
      await page.waitFor(
        `document.getElementById("h-chart").dataset.metric === "pressure" && document.getElementById("h-chart").dataset.sensor === "2"`,
        20_000,
        "pressure history after Enter",
      );

      // living-1 stops reporting: the page turns it silent on its own, without a reload.
      await page.eval("window.__noReload = 1");
      await page.waitFor(`${health("living-1")} === "silent"`, 60_000, "living-1 silent");
      equal(await page.eval("window.__noReload"), 1, "the page was not reloaded");
      deepEqual(page.errors, [], "no console errors (CSP included)");
    } finally {
      await client.close();
    }
  },
});

Deno.test({
  name:
    "dashboard with MCP_AUTH_TOKEN: login once, then an HttpOnly SameSite cookie; nothing without it",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const token = "dashboard-test-token-0123456789";
    await using server = await startSeededServe({ MCP_AUTH_TOKEN: token });
    const get = async (path: string, headers: Record<string, string> = {}) => {
      const r = await fetch(`${server.base}${path}`, { headers, redirect: "manual" });
      const body = await r.text();
      return { status: r.status, body, location: r.headers.get("location"), headers: r.headers };
    };
    // Without the cookie: the page sends to the login, the data answer 401.
    const page0 = await get("/");
    equal(page0.status, 303);
    equal(page0.location, "/login");
    for (
      const path of [
        "/dashboard/api/overview",
        "/dashboard/api/sparklines",
        "/dashboard/api/history?sensor_id=1&metric=co2&range=24h",
      ]
    ) {
      equal((await get(path)).status, 401, path);
      equal(
        (await get(path, { cookie: `ambient_session=${token}` })).status,
        401,
        "the token is no cookie",
      );
      equal(
        (await get(path, {
          cookie:
            "ambient_session=9999999999.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        })).status,
        401,
        "a forged cookie",
      );
      equal(
        (await get(path, { authorization: `Bearer ${token}` })).status,
        401,
        "only the session",
      );
    }
    const login = await get("/login");
    equal(login.status, 200);
    ok(!login.body.includes(token));
    // A wrong token is refused; a foreign Origin and Host are refused before anything else.
    const wrong = await fetch(`${server.base}/login`, {
      method: "POST",
      body: new URLSearchParams({ token: "not-the-token-at-all" }),
      redirect: "manual",
    });
    equal(wrong.status, 401);
    equal(wrong.headers.get("set-cookie"), null);
    await wrong.body?.cancel();
    const foreign = await fetch(`${server.base}/login`, {
      method: "POST",
      headers: { origin: "http://evil.example" },
      body: new URLSearchParams({ token }),
      redirect: "manual",
    });
    equal(foreign.status, 403);
    await foreign.body?.cancel();

    // In the browser: type the token once, land on the dashboard, the cookie is HttpOnly+Strict.
    await using browser = await Browser.launch();
    const page = await browser.newPage();
    await page.goto(`${server.base}/`);
    await page.waitFor(`location.pathname === "/login" && document.getElementById("token")`);
    await page.eval(`document.getElementById("token").value = ${JSON.stringify(token)}`);
    await page.eval(`document.querySelector("form").submit()`);
    await page.waitFor(
      `location.pathname === "/" && ${devicesShown} === 3`,
      30_000,
      "dashboard after login",
    );
    const { cookies } = await page.send<
      {
        cookies: {
          name: string;
          value: string;
          httpOnly: boolean;
          sameSite: string;
          secure: boolean;
        }[];
      }
    >(
      "Network.getCookies",
      { urls: [server.base] },
    );
    const session = cookies.find((c) => c.name === "ambient_session");
    ok(session, "session cookie set");
    equal(session.httpOnly, true);
    equal(session.sameSite, "Strict");
    equal(session.secure, false, "plain HTTP: no Secure flag");
    ok(!session.value.includes(token), "the cookie is not the token");
    equal(await page.eval("document.cookie"), "", "scripts cannot read it");
    const html = await page.eval<string>("document.documentElement.outerHTML");
    ok(!html.includes(token), "no secret in the page");
    // The same cookie opens the data endpoints outside the browser too.
    const ok200 = await get("/dashboard/api/overview", {
      cookie: `ambient_session=${session.value}`,
    });
    equal(ok200.status, 200);
    equal(JSON.parse(ok200.body).devices.length, 3);
    ok(!ok200.body.includes(token));
    const evilHost = await rawRequest(server.port, {
      path: "/dashboard/api/overview",
      headers: { cookie: `ambient_session=${session.value}`, host: "evil.example" },
    });
    equal(evilHost.status, 403, "DNS rebinding: foreign Host");
    // Sign out clears the cookie.
    await page.eval(`document.querySelector("#logout").submit()`);
    await page.waitFor(`location.pathname === "/login"`, 20_000, "login after sign-out");
  },
});

Deno.test({
  name: "dashboard over HTTPS: the page and its data behind the login, the cookie marked Secure",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const tls = await Deno.makeTempDir({ prefix: "dashboard-tls-" });
    try {
      await writeSelfSignedCert(tls);
      const pem = { cert: `${tls}/cert.pem`, key: `${tls}/key.pem` };
      const token = "dashboard-https-token-0123456789";
      const httpsPort = await freePort();
      await using _server = await startSeededServe({
        MCP_AUTH_TOKEN: token,
        HTTPS_PORT: String(httpsPort),
        TLS_CERT_FILE: pem.cert,
        TLS_KEY_FILE: pem.key,
      }, ["--https"]);
      using client = Deno.createHttpClient({
        caCerts: [await Deno.readTextFile(pem.cert)],
      });
      const base = `https://127.0.0.1:${httpsPort}`;
      const send = async (path: string, init: RequestInit = {}) => {
        const r = await fetch(`${base}${path}`, { ...init, client, redirect: "manual" });
        const body = await r.text();
        return { status: r.status, body, headers: r.headers };
      };
      equal((await send("/")).status, 303);
      equal((await send("/dashboard/api/overview")).status, 401);
      const login = await send("/login", { method: "POST", body: new URLSearchParams({ token }) });
      equal(login.status, 303);
      const cookie = login.headers.get("set-cookie") ?? "";
      match(
        cookie,
        /^ambient_session=[^;]+; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Strict; Secure$/,
      );
      const value = cookie.split(";")[0];
      ok(!value.includes(token));
      const page = await send("/", { headers: { cookie: value } });
      equal(page.status, 200);
      match(page.body, /<title>Ambient sensors<\/title>/);
      match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
      const data = await send("/dashboard/api/overview", { headers: { cookie: value } });
      equal(data.status, 200);
      equal(JSON.parse(data.body).devices.length, 3);
      // The chart library is the server's own copy of uPlot.
      const lib = await send("/dashboard/uplot.js");
      equal(lib.status, 200);
      match(lib.body, /uPlot/);
      // A reload revalidates it: 304 without a body while it is unchanged.
      const tag = lib.headers.get("etag");
      ok(tag, "an ETag");
      const again = await send("/dashboard/uplot.js", { headers: { "if-none-match": tag } });
      equal(again.status, 304);
      equal(again.body, "");
      equal(
        (await send("/dashboard/uplot.js", { headers: { "if-none-match": '"x"' } })).status,
        200,
      );
    } finally {
      await Deno.remove(tls, { recursive: true });
    }
  },
});
