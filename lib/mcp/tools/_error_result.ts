import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { McpError } from "@modelcontextprotocol/sdk/types.js";
import { z } from "zod";
import { DB_UNAVAILABLE_TEXT, isDbUnavailable } from "../../db/mod.ts";
import { logger } from "../../log/mod.ts";

const log = logger("mcp");

/** An MCP tool result that reports `text` as an error to the assistant. */
export type ErrorResult = { isError: true; content: { type: "text"; text: string }[] };

/** An MCP error result with one text part. */
export function errorResult(text: string): ErrorResult {
  return { isError: true, content: [{ type: "text", text }] };
}

/** Results that say the database could not be reached: a read-only tool runs once more. */
const unavailable = new WeakSet<object>();

/**
 * The result of a tool that could not reach the database: one plain sentence for the assistant,
 * the driver's error (socket text and all) in the server log under the tool's name.
 */
export function unavailableResult(tool: string, error: unknown): ErrorResult {
  log.warn(`${tool}: the database is unavailable`, { error });
  const result = errorResult(DB_UNAVAILABLE_TEXT);
  unavailable.add(result);
  return result;
}

/**
 * The error result of a read-only tool whose database query failed: the error goes to the server
 * log under the tool's name; the assistant reads `DB_UNAVAILABLE_TEXT` when the database could
 * not be reached, else "Could not <what>: the database is not answering".
 */
export function databaseErrorResult(tool: string, what: string, error: unknown): ErrorResult {
  if (isDbUnavailable(error)) return unavailableResult(tool, error);
  log.error(`${tool} failed`, { error });
  return errorResult(`Could not ${what}: the database is not answering. Try again shortly.`);
}

/** Pause before a read-only tool runs again after a lost connection (the pool reconnects). */
const RETRY_DELAY_MS = 100;

// deno-lint-ignore no-explicit-any
type Handler = (...args: any[]) => unknown;

/**
 * Makes every tool registered on `server` from now on safe to fail: a read-only tool
 * (`readOnlyHint`) that lost its database connection runs once more after a short pause (a
 * connection the database dropped fails the first call on it), a tool that still cannot reach the
 * database answers `DB_UNAVAILABLE_TEXT`, and any other unexpected error is logged and answered
 * without its text (which may carry driver or path details). Protocol errors (`McpError`) pass.
 */
export function guardToolErrors(server: McpServer): void {
  // deno-lint-ignore no-explicit-any
  const register = server.registerTool.bind(server) as (...args: any[]) => unknown;
  // deno-lint-ignore no-explicit-any
  (server as any).registerTool = (name: string, config: Record<string, unknown>, cb: Handler) => {
    const readOnly = (config.annotations as { readOnlyHint?: boolean } | undefined)
      ?.readOnlyHint === true;
    const once = async (args: unknown[]) => {
      try {
        const result = await cb(...args);
        return { result, lost: unavailable.has(result as object) };
      } catch (error) {
        if (error instanceof McpError) throw error;
        if (isDbUnavailable(error)) return { result: unavailableResult(name, error), lost: true };
        log.error(`${name} failed unexpectedly`, { error });
        return {
          result: errorResult(
            "The tool failed because of a problem on the server (details are in the server " +
              "log). Try again in a moment.",
          ),
          lost: false,
        };
      }
    };
    const guarded = async (...args: unknown[]) => {
      const first = await once(args);
      if (!first.lost || !readOnly) return first.result;
      const signal = (args.at(-1) as { signal?: AbortSignal } | undefined)?.signal;
      await new Promise((r) => setTimeout(r, RETRY_DELAY_MS));
      if (signal?.aborted) return first.result;
      return (await once(args)).result;
    };
    return register(name, objectSchemas(config), guarded);
  };
}

/** Object schemas built from the tools' module-level shapes, once per shape. */
const built = new WeakMap<object, z.ZodType>();

/**
 * `config` with its input and output shapes turned into object schemas once per process: the SDK
 * would build them anew from the shapes for every server, and stateless HTTP builds a server for
 * every request (see the mixed part of `deno task bench`).
 */
function objectSchemas(config: Record<string, unknown>): Record<string, unknown> {
  const out = { ...config };
  for (const key of ["inputSchema", "outputSchema"] as const) {
    const shape = config[key];
    if (!shape || typeof shape !== "object" || "_zod" in shape) continue;
    let schema = built.get(shape);
    if (!schema) built.set(shape, schema = z.object(shape as z.ZodRawShape));
    out[key] = schema;
  }
  return out;
}
