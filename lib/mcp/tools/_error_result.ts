import { logger } from "../../log/mod.ts";

const log = logger("mcp");

/** An MCP tool result that reports `text` as an error to the assistant. */
export type ErrorResult = { isError: true; content: { type: "text"; text: string }[] };

/** An MCP error result with one text part. */
export function errorResult(text: string): ErrorResult {
  return { isError: true, content: [{ type: "text", text }] };
}

/**
 * The error result of a read-only tool whose database query failed: the error goes to the server
 * log under the tool's name, the assistant reads "Could not <what>: the database is not answering".
 */
export function databaseErrorResult(tool: string, what: string, error: unknown): ErrorResult {
  log.error(`${tool} failed`, { error });
  return errorResult(`Could not ${what}: the database is not answering. Try again shortly.`);
}
