import {
  SandboxLimitExceeded,
  SandboxMemoryExceeded,
  SandboxTimeout,
  SandboxUnavailable,
  SandboxUserError,
} from "../../sandbox/mod.ts";
import { logger } from "../../log/mod.ts";
import { type ErrorResult, errorResult } from "./_error_result.ts";

const log = logger("sandbox");

/**
 * An MCP error result for a sandbox failure, telling the assistant what to do next. Unexpected
 * failures (e.g. the job folder cannot be written) are logged and reported without their details,
 * which may name server paths.
 */
export function sandboxErrorResult(error: unknown): ErrorResult {
  let text: string;
  if (error instanceof SandboxUserError) {
    text = `Your Python code raised an error:\n${error.traceback}` +
      (error.stdout ? `\nOutput before the error:\n${error.stdout}` : "") +
      "\nFix the code and call the tool again.";
  } else if (error instanceof SandboxTimeout) {
    text =
      `${error.message}. Work on fewer rows (filter or resample in SQL first) or simplify the code.`;
  } else if (error instanceof SandboxMemoryExceeded) {
    text =
      `${error.message}. Select fewer rows or columns in SQL (aggregate with time buckets) and retry.`;
  } else if (error instanceof SandboxLimitExceeded) {
    text = `${error.message}. Simplify the code (no subprocesses, print less) and retry.`;
  } else if (error instanceof SandboxUnavailable) {
    text = `${error.message}.`;
  } else {
    log.error("sandbox job failed unexpectedly", { error });
    text =
      "The sandbox could not run the job because of a problem on the server (details are in the server log). Try again later, or compute the result in SQL with execute_sql_query.";
  }
  return errorResult(text);
}

/** The message for a missing sandbox. */
export const NO_SANDBOX =
  "The analysis sandbox is disabled on this server (SANDBOX_ENGINE=off or neither docker nor bubblewrap with python3-pandas is installed). Use execute_sql_query to compute aggregates in SQL instead.";

/** The message for an unknown or expired query id. */
export function unknownQuery(id: string): string {
  return `No cached result for query_id "${id}" (unknown or expired). Run execute_sql_query again and use the new query_id.`;
}
