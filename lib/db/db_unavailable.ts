/**
 * The one place that tells "the database cannot be reached" from "the database answered with an
 * error". Callers show a person `DB_UNAVAILABLE_TEXT` for the first and keep the driver's own
 * text (socket errors, `write CONNECTION_CLOSED host:port`, …) for the log.
 */
import { isConnectionState } from "./sql_state.ts";

/** What a person reads when the database cannot be reached. */
export const DB_UNAVAILABLE_TEXT = "The database is unavailable; try again in a moment.";

/** The database cannot be reached now; `cause` holds the driver's error. */
export class DbUnavailable extends Error {
  constructor(options?: ErrorOptions) {
    super(DB_UNAVAILABLE_TEXT, options);
    this.name = "DbUnavailable";
  }
}

// postgres.js connection errors, and socket errors of Node's `net` (as Deno's node compatibility
// reports them).
const CODES = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTCONN",
  "EAI_AGAIN",
  "ERR_SOCKET_CLOSED",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
]);

// Deno's own network errors, for drivers that do not translate them.
const DENO_ERRORS = [
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "BrokenPipe",
  "NotConnected",
  "TimedOut",
] as const;

/**
 * True when `error` (or an error in its `cause` chain) says the database could not be reached or
 * dropped the connection, rather than refusing a statement.
 */
export function isDbUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 8; depth++) {
    if (e instanceof DbUnavailable) return true;
    if (typeof e !== "object") return false;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (isConnectionState(code) || CODES.has(code))) return true;
    for (const name of DENO_ERRORS) {
      const cls = (Deno.errors as Record<string, unknown>)[name];
      if (typeof cls === "function" && e instanceof (cls as new () => Error)) return true;
    }
    // postgres.js ends a socket it was writing to with Node's "write after end" message.
    const message = (e as { message?: unknown }).message;
    if (
      typeof message === "string" && /^This socket has been ended by the other party/.test(message)
    ) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}
