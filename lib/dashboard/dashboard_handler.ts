import type { ResolvedServeConfig } from "../config/mod.ts";
import type { Db } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import { ReadingsError } from "../readings/mod.ts";
import { chartAssets } from "./chart_assets.ts";
import { defaultSeries, historyJson, loadHistory } from "./_history.ts";
import { loginPage } from "./_login_page.ts";
import { loadOverview } from "./_overview.ts";
import { readCookie, SESSION_COOKIE, SESSION_TTL_S, SessionSigner } from "./_session.ts";
import { SparklineCache } from "./_sparklines.ts";

const log = logger("dashboard");

/** Why a request must be refused (Host or Origin not ours), or undefined; see `/mcp`. */
export type RequestCheck = (req: Request) => string | undefined;

/** A route handler that answers only the paths it owns (undefined for the others). */
export type DashboardRoutes = (req: Request, check: RequestCheck) => Promise<Response> | undefined;

/** What the dashboard reads. */
export interface DashboardOptions {
  db: Db;
  config: ResolvedServeConfig;
  /** The embedded collector's counters, when it runs in this process. */
  collector?: () => Record<string, unknown> | undefined;
}

/** Failed logins accepted per minute before the login answers 429. */
const LOGIN_FAILURES_PER_MIN = 10;
const FORM_MAX_BYTES = 4096;

const ASSETS: Record<string, { key: keyof Awaited<ReturnType<typeof chartAssets>>; type: string }> =
  {
    "/dashboard/uplot.js": { key: "uplotJs", type: "text/javascript; charset=utf-8" },
    "/dashboard/uplot.css": { key: "uplotCss", type: "text/css; charset=utf-8" },
    "/dashboard/chart.js": { key: "chartJs", type: "text/javascript; charset=utf-8" },
    "/dashboard/style.css": { key: "styleCss", type: "text/css; charset=utf-8" },
    "/dashboard/dashboard.js": { key: "dashboardJs", type: "text/javascript; charset=utf-8" },
  };

const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; " +
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; " +
    "frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  // not no-referrer: with it a browser sends `Origin: null` on the login form, which the
  // Origin check refuses.
  "referrer-policy": "same-origin",
};

function respond(status: number, body: BodyInit | null, headers: Record<string, string>) {
  return new Response(body, { status, headers: { ...SECURITY_HEADERS, ...headers } });
}

function json(status: number, body: unknown): Response {
  return respond(status, JSON.stringify(body), {
    "content-type": "application/json; charset=utf-8",
    "cache-control": "no-store",
  });
}

function redirect(to: string, extra: Record<string, string> = {}): Response {
  return respond(303, null, { location: to, "cache-control": "no-store", ...extra });
}

/**
 * The dashboard's routes: the page at `/`, its script, styles and chart library under
 * `/dashboard/`, its data under `/dashboard/api/` (overview, sparklines, history), and, with
 * MCP_AUTH_TOKEN set, `/login` and `/logout`. Every request passes the same Host/Origin check
 * as `/mcp`; with a token, the page and the data need the signed session cookie the login sets
 * (HttpOnly, SameSite=Strict, Secure over HTTPS).
 */
export function createDashboardHandler(opts: DashboardOptions): DashboardRoutes {
  const { db, config } = opts;
  const signer = config.authToken ? new SessionSigner(config.authToken) : undefined;
  const timeoutMs = config.query.timeoutS * 1000;
  const sparklines = new SparklineCache(db, { timeoutMs });
  const failures: number[] = [];

  const signedIn = async (req: Request) =>
    !signer || await signer.verify(readCookie(req.headers.get("cookie"), SESSION_COOKIE));

  async function login(req: Request): Promise<Response> {
    const secure = new URL(req.url).protocol === "https:";
    if (!signer) return redirect("/");
    if (req.method === "GET" || req.method === "HEAD") {
      if (await signedIn(req)) return redirect("/");
      return html(200, loginPage({}));
    }
    if (req.method !== "POST") return json(405, { error: "Method not allowed" });
    const now = Date.now();
    while (failures.length && failures[0] < now - 60_000) failures.shift();
    if (failures.length >= LOGIN_FAILURES_PER_MIN) {
      return html(429, loginPage({ error: "Too many failed attempts. Wait a minute." }), {
        "retry-after": "60",
      });
    }
    const given = await formField(req, "token");
    if (given === undefined || !await signer.tokenMatches(given)) {
      failures.push(now);
      log.warn("dashboard login refused");
      return html(401, loginPage({ error: "That is not the server's MCP_AUTH_TOKEN." }));
    }
    const cookie = `${SESSION_COOKIE}=${await signer.issue()}; Path=/; Max-Age=${SESSION_TTL_S}; ` +
      `HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
    return redirect("/", { "set-cookie": cookie });
  }

  async function api(url: URL): Promise<Response> {
    const now = new Date();
    if (url.pathname === "/dashboard/api/overview") {
      const overview = await loadOverview(db, {
        now,
        thresholdS: config.monitor.inactivityThresholdS,
        collector: opts.collector,
      });
      return json(200, { ...overview, auth: signer !== undefined });
    }
    if (url.pathname === "/dashboard/api/sparklines") {
      return json(200, { sensors: await sparklines.get(now) });
    }
    if (url.pathname === "/dashboard/api/history") {
      let id = url.searchParams.get("sensor_id") ?? "";
      let metric = url.searchParams.get("metric") ?? "";
      if (id === "" && metric === "") {
        // The page's first chart: the server picks the series (see defaultSeries).
        const pick = await defaultSeries(db);
        if (!pick) return json(404, { error: "No sensor has readings yet" });
        id = String(pick.sensorId);
        metric = pick.metric;
      }
      if (!/^\d{1,9}$/.test(id)) return json(400, { error: "sensor_id must be a number" });
      if (!/^[A-Za-z0-9_.-]{1,63}$/.test(metric)) {
        return json(400, { error: "metric must be a metric name, e.g. co2" });
      }
      try {
        const h = await loadHistory(db, {
          sensorId: Number(id),
          metric,
          range: url.searchParams.get("range") ?? "24h",
          now,
          timeoutMs,
        });
        return json(200, historyJson(h));
      } catch (error) {
        if (error instanceof ReadingsError || error instanceof RangeError) {
          return json(400, { error: error.message });
        }
        throw error;
      }
    }
    return json(404, { error: "Not found" });
  }

  async function handle(req: Request, url: URL, check: RequestCheck): Promise<Response> {
    const refused = check(req);
    if (refused) {
      log.warn("refused dashboard request", { reason: refused });
      return json(403, { error: `Forbidden: ${refused}` });
    }
    const path = url.pathname;
    if (path === "/login") return await login(req);
    if (path === "/logout") {
      if (req.method !== "POST") return json(405, { error: "Method not allowed" });
      return redirect(signer ? "/login" : "/", {
        "set-cookie": `${SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict`,
      });
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      return json(405, { error: "Method not allowed" });
    }
    const asset = Object.hasOwn(ASSETS, path) ? ASSETS[path] : undefined;
    if (asset) {
      // Code and styles only, the same for everyone: no session needed (the login page uses them).
      // Revalidated on every load (no-cache) by ETag: a reload costs a 304 per file, not 60 KB.
      const text = (await chartAssets())[asset.key];
      const tag = await etag(text);
      const headers = { "content-type": asset.type, "cache-control": "no-cache", etag: tag };
      if (matchesTag(req.headers.get("if-none-match"), tag)) return respond(304, null, headers);
      return respond(200, req.method === "HEAD" ? null : text, headers);
    }
    const ok = await signedIn(req);
    if (path === "/") {
      if (!ok) return redirect("/login");
      return html(200, (await chartAssets()).indexHtml, {}, req.method === "HEAD");
    }
    if (!ok) return json(401, { error: "Unauthorized: sign in at /login" });
    return await api(url);
  }

  return (req, check) => {
    const url = new URL(req.url);
    const p = url.pathname;
    if (p !== "/" && p !== "/login" && p !== "/logout" && !p.startsWith("/dashboard/")) {
      return undefined;
    }
    return handle(req, url, check).catch((error) => {
      log.error("dashboard request failed", { path: p, error });
      return json(500, { error: "Internal server error" });
    });
  };
}

const etags = new Map<string, string>();

/** A strong ETag for an asset's text (its SHA-256, cut), computed once per text. */
async function etag(text: string): Promise<string> {
  let tag = etags.get(text);
  if (!tag) {
    const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    tag = `"${btoa(String.fromCharCode(...new Uint8Array(hash).slice(0, 18)))}"`;
    etags.set(text, tag);
  }
  return tag;
}

function matchesTag(header: string | null, tag: string): boolean {
  if (!header || header.length > 1024) return false;
  return header.split(",").some((t) => t.trim().replace(/^W\//, "") === tag || t.trim() === "*");
}

function html(
  status: number,
  body: string,
  headers: Record<string, string> = {},
  head = false,
): Response {
  return respond(status, head ? null : body, {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    ...headers,
  });
}

/** One field of a small urlencoded form body, or undefined when missing, too big or malformed. */
async function formField(req: Request, name: string): Promise<string | undefined> {
  const type = req.headers.get("content-type") ?? "";
  if (!type.startsWith("application/x-www-form-urlencoded")) return undefined;
  const reader = req.body?.getReader();
  if (!reader) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > FORM_MAX_BYTES) {
      await reader.cancel();
      return undefined;
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.length;
  }
  try {
    return new URLSearchParams(new TextDecoder("utf-8", { fatal: true }).decode(bytes)).get(name) ??
      undefined;
  } catch {
    return undefined;
  }
}
