// Progress and log notifications a tool sends while it works (MCP `notifications/progress`
// when the client sent a progress token, `notifications/message` for output and slow steps).
// They travel on the request's own response stream: see `streamedCall` in http_handler.ts.
import type { RequestHandlerExtra } from "@modelcontextprotocol/sdk/shared/protocol.js";
import type { ServerNotification, ServerRequest } from "@modelcontextprotocol/sdk/types.js";

/** The second argument of a tool handler. */
export type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;
type Extra = ToolExtra;

/** MCP log levels (RFC 5424 names). */
export type McpLogLevel =
  | "debug"
  | "info"
  | "notice"
  | "warning"
  | "error"
  | "critical"
  | "alert"
  | "emergency";

/** How often a running step reports progress. */
const HEARTBEAT_MS = 2000;
/** A step running longer than this is logged as slow. */
const SLOW_MS = 5000;
/** Largest log message payload, in characters. */
const LOG_TEXT_MAX = 4000;

async function notify(extra: Extra | undefined, n: ServerNotification): Promise<void> {
  try {
    await extra?.sendNotification(n);
  } catch {
    // the client went away or the stream is closed: progress is best effort
  }
}

/** Sends `notifications/message` to the client of this request (text cut at 4000 characters). */
export async function logToClient(
  extra: Extra | undefined,
  level: McpLogLevel,
  logger: string,
  data: string | Record<string, unknown>,
): Promise<void> {
  const value = typeof data === "string" && data.length > LOG_TEXT_MAX
    ? data.slice(0, LOG_TEXT_MAX) + "…"
    : data;
  await notify(extra, { method: "notifications/message", params: { level, logger, data: value } });
}

/**
 * Runs `fn`, reporting progress to the client when the request carried a progress token: at the
 * start, every 2 s (the seconds elapsed) and at the end; a step slower than 5 s is also logged.
 */
export async function withProgress<T>(
  extra: Extra | undefined,
  what: string,
  fn: () => Promise<T>,
): Promise<T> {
  const token = extra?._meta?.progressToken;
  const started = Date.now();
  const elapsed = () => Math.round((Date.now() - started) / 100) / 10;
  const progress = (p: number, message: string, total?: number) =>
    token === undefined ? Promise.resolve() : notify(extra, {
      method: "notifications/progress",
      params: {
        progressToken: token,
        progress: p,
        ...(total !== undefined ? { total } : {}),
        message,
      },
    });
  await progress(0, `${what}: started`);
  let last = 0;
  const timer = setInterval(() => {
    const s = elapsed();
    if (s <= last) return;
    last = s;
    void progress(s, `${what}: running for ${Math.round(s)} s`);
  }, HEARTBEAT_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    const s = Math.max(elapsed(), last + 0.1);
    await progress(s, `${what}: finished after ${s} s`, s);
    if (Date.now() - started > SLOW_MS) {
      await logToClient(extra, "notice", "ambient-sensors", `${what} took ${s} s`);
    }
  }
}
