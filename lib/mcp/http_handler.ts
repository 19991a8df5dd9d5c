import { WebStandardStreamableHTTPServerTransport } from "@modelcontextprotocol/sdk/server/webStandardStreamableHttp.js";
import { logger } from "../log/mod.ts";
import type { ToolDeps } from "./deps.ts";
import { allowedHosts, bearerMatches, checkHostAndOrigin, machineNames } from "./_request_guard.ts";
import { createMcpServer } from "./server.ts";

const log = logger("http");

/** Options of `createHttpHandler`. */
export interface HttpHandlerOptions {
  /**
   * Ports the server actually listens on (HTTP and HTTPS), used for the allowed `Host` values.
   * Default: `config.port`.
   */
  ports?: number[];
  /** Extra fields for `GET /healthz`, e.g. collector statistics when it runs in-process. */
  health?: () => Record<string, unknown> | Promise<Record<string, unknown>>;
  /** How long `/healthz` waits for the database (default 2000 ms). */
  healthTimeoutMs?: number;
  /**
   * Extra routes tried before the 404 (the dashboard): undefined for a path they do not own.
   * They get the Host/Origin check `/mcp` uses.
   */
  routes?: (req: Request, check: (req: Request) => string | undefined) =>
    | Promise<Response>
    | undefined;
}

const FILE_RE = /^\/files\/([A-Za-z0-9-]{1,64})\.(csv|png)$/;

function json(status: number, body: unknown, headers: HeadersInit = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json", "cache-control": "no-store", ...headers },
  });
}

function rpcError(status: number, message: string, headers: HeadersInit = {}): Response {
  return json(status, { jsonrpc: "2.0", error: { code: -32000, message }, id: null }, headers);
}

/** Tools that send log messages (sandbox output, slow steps) even without a progress token. */
const STREAMED_TOOLS = new Set(["analyze_data", "create_plot"]);
/** Bodies larger than this are not looked into (the call answers as plain JSON). */
const PEEK_MAX_BYTES = 256 * 1024;

/**
 * True when the request is one `tools/call` that carries a progress token or calls a tool in
 * `STREAMED_TOOLS` and the client accepts SSE: its notifications need the response stream.
 * Reads a copy of the body, at most PEEK_MAX_BYTES; the transport reads the original.
 */
async function streamedCall(req: Request): Promise<boolean> {
  if (req.method !== "POST" || !req.body) return false;
  if (!(req.headers.get("accept") ?? "").includes("text/event-stream")) return false;
  const length = Number(req.headers.get("content-length") ?? NaN);
  if (!(length <= PEEK_MAX_BYTES)) return false;
  try {
    const msg = JSON.parse(await req.clone().text());
    return msg?.method === "tools/call" &&
      (msg.params?._meta?.progressToken !== undefined || STREAMED_TOOLS.has(msg.params?.name));
  } catch {
    return false;
  }
}

/**
 * The request handler for `Deno.serve`: MCP over Streamable HTTP at `/mcp` and `/mcp/`
 * (stateless, a new server and transport per request), `GET /healthz` (503 when the database
 * does not answer), `GET /healthz/live` (the process alone, no database), and `GET /files/{id}.csv`
 * / `.png` for signed result links. Every `/mcp` request is checked for `Host` and `Origin`
 * (403) and, with `MCP_AUTH_TOKEN`, for `Authorization: Bearer` (401). Unexpected failures
 * answer 500 without details; the details go to the log.
 */
export function createHttpHandler(
  deps: ToolDeps,
  opts: HttpHandlerOptions = {},
): (req: Request) => Promise<Response> {
  const { config } = deps;
  const allowed = allowedHosts({
    host: config.host,
    ports: opts.ports ?? [config.port],
    serverUrl: config.serverUrl,
    machineNames: ["0.0.0.0", "::", "[::]"].includes(config.host) ? machineNames() : [],
  });
  const token = config.authToken;
  const healthTimeoutMs = opts.healthTimeoutMs ?? 2000;

  async function mcp(req: Request): Promise<Response> {
    const refused = checkHostAndOrigin(req, allowed, { checkOrigin: true });
    if (refused) {
      log.warn("refused /mcp request", { reason: refused });
      return rpcError(403, `Forbidden: ${refused}`);
    }
    if (token && !await bearerMatches(req.headers.get("authorization"), token)) {
      return rpcError(401, "Unauthorized: send Authorization: Bearer <MCP_AUTH_TOKEN>", {
        "www-authenticate": 'Bearer realm="ambient-sensors"',
      });
    }
    if (req.method !== "POST") {
      // Stateless: no standalone SSE stream (GET) and no session to end (DELETE).
      return rpcError(405, "Method not allowed: this server is stateless, use POST", {
        allow: "POST",
      });
    }
    const server = createMcpServer(deps);
    // A tool call that reports progress or log messages answers as an SSE stream.
    const streamed = await streamedCall(req);
    const transport = new WebStandardStreamableHTTPServerTransport({
      sessionIdGenerator: undefined,
      enableJsonResponse: !streamed,
    });
    await server.connect(transport);
    let res: Response;
    try {
      res = await transport.handleRequest(req);
    } catch (error) {
      await server.close();
      throw error;
    }
    if (!streamed || !res.body) {
      await server.close();
      return res;
    }
    // The stream is written after handleRequest returns: close the server once it has ended
    // (or the client went away).
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    res.body.pipeTo(writable).catch(() => {}).finally(() => server.close().catch(() => {}));
    return new Response(readable, { status: res.status, headers: res.headers });
  }

  async function healthz(): Promise<Response> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let reachable = false;
    try {
      reachable = await Promise.race([
        deps.db.query("select 1").then(() => true),
        new Promise<boolean>((r) => timer = setTimeout(() => r(false), healthTimeoutMs)),
      ]);
    } catch {
      reachable = false;
    } finally {
      clearTimeout(timer);
    }
    let extra: Record<string, unknown> = {};
    try {
      extra = await opts.health?.() ?? {};
    } catch (error) {
      log.warn("health callback failed", { error });
    }
    return json(reachable ? 200 : 503, {
      ok: reachable,
      db: { kind: deps.db.kind, reachable },
      sandbox: deps.sandbox?.engine ?? "off",
      ...extra,
    });
  }

  async function files(req: Request, url: URL): Promise<Response> {
    const m = FILE_RE.exec(url.pathname);
    if (!m) return json(404, { error: "Not found" });
    const refused = checkHostAndOrigin(req, allowed, { checkOrigin: false });
    if (refused) return json(403, { error: `Forbidden: ${refused}` });
    const [, id, ext] = m as unknown as [string, string, "csv" | "png"];
    const signed = url.searchParams.has("sig") &&
      await deps.results.verifyLink(id, ext, url.searchParams);
    const bearer = !signed && token !== undefined &&
      req.headers.has("authorization") &&
      await bearerMatches(req.headers.get("authorization"), token);
    if (!signed && !bearer) {
      return json(403, {
        error: "Forbidden: the link is invalid or has expired. Run the query again for a new link.",
      });
    }
    const file = await deps.results.openFile(id, ext);
    if (!file) {
      return json(404, { error: `No ${ext.toUpperCase()} file ${id} (unknown or expired)` });
    }
    const headers: Record<string, string> = {
      "content-length": String(file.size),
      "cache-control": "private, max-age=300",
      "x-content-type-options": "nosniff",
      "content-type": ext === "csv" ? "text/csv; charset=utf-8" : "image/png",
      "content-disposition": ext === "csv"
        ? `attachment; filename="query-${id}.csv"`
        : `inline; filename="plot-${id}.png"`,
    };
    if (req.method === "HEAD") {
      await file.body.cancel();
      return new Response(null, { status: 200, headers });
    }
    return new Response(file.body, { status: 200, headers });
  }

  return async (req: Request): Promise<Response> => {
    try {
      const url = new URL(req.url);
      const path = url.pathname;
      if (path === "/mcp" || path === "/mcp/") return await mcp(req);
      const routed = opts.routes?.(
        req,
        (r) => checkHostAndOrigin(r, allowed, { checkOrigin: true }),
      );
      if (routed) return await routed;
      if (req.method !== "GET" && req.method !== "HEAD") {
        const known = path === "/healthz" || path === "/healthz/live" ||
          path.startsWith("/files/");
        return json(known ? 405 : 404, { error: known ? "Method not allowed" : "Not found" });
      }
      if (path === "/healthz") return await healthz();
      // Liveness: the process answers; never touches the database.
      if (path === "/healthz/live") return json(200, { ok: true, live: true });
      if (path.startsWith("/files/")) return await files(req, url);
      return json(404, { error: "Not found" });
    } catch (error) {
      log.error("request failed", { method: req.method, error });
      return json(500, { error: "Internal server error" });
    }
  };
}
