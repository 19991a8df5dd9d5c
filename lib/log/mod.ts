/**
 * One small logger for every process. Everything goes to stderr so that stdout stays free for
 * the MCP stdio transport.
 *
 * @module
 */

/** Severity of a log line. */
export type LogLevel = "debug" | "info" | "warn" | "error";

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold: LogLevel = "info";
const encoder = new TextEncoder();

/** Sets the lowest level that is written (default `info`). */
export function setLogLevel(level: LogLevel): void {
  threshold = level;
}

function write(level: LogLevel, scope: string, message: string, fields?: Record<string, unknown>) {
  if (ORDER[level] < ORDER[threshold]) return;
  let line = `${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${scope}] ${message}`;
  if (fields && Object.keys(fields).length > 0) {
    line += " " + Object.entries(fields).map(([k, v]) => `${k}=${formatValue(v)}`).join(" ");
  }
  try {
    Deno.stderr.writeSync(encoder.encode(line + "\n"));
  } catch {
    // stderr closed (parent went away): nothing sensible left to do with a log line.
  }
}

function formatValue(v: unknown): string {
  if (v instanceof Error) return JSON.stringify(v.message);
  if (typeof v === "string") return /\s|"/.test(v) ? JSON.stringify(v) : v;
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

/** A logger bound to one scope, e.g. `collector` or `mcp`. */
export interface Logger {
  debug(message: string, fields?: Record<string, unknown>): void;
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Returns a logger whose lines carry `[scope]`. */
export function logger(scope: string): Logger {
  return {
    debug: (m, f) => write("debug", scope, m, f),
    info: (m, f) => write("info", scope, m, f),
    warn: (m, f) => write("warn", scope, m, f),
    error: (m, f) => write("error", scope, m, f),
  };
}
