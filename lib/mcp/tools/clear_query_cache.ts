import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { z } from "zod";
import type { ToolDeps } from "../deps.ts";
import { errorResult } from "./_error_result.ts";

/** Input of `clear_query_cache`. */
export const ClearQueryCacheInput = {
  query_id: z.string().max(100).optional().describe(
    "The query_id of one result to remove; omit it to remove every cached result and plot",
  ),
};

/** Structured output of `clear_query_cache`. */
export const ClearQueryCacheOutput = {
  removed: z.array(z.string()).describe("Ids of the removed query results and plots"),
  removed_queries: z.number().int().describe("How many query results were removed"),
  removed_plots: z.number().int().describe("How many plots were removed"),
};

/** Registers `clear_query_cache`: removes one cached query result, or all results and plots. */
export function registerClearQueryCacheTool(server: McpServer, deps: ToolDeps): void {
  server.registerTool("clear_query_cache", {
    title: "Remove cached query results",
    description:
      "Deletes the saved CSV of one execute_sql_query result (give its query_id), or every saved result and plot (no query_id). Their query_ids and download links stop working. Results also expire on their own after QUERY_CACHE_TTL_H hours, so this is only needed to free space or drop data early.",
    inputSchema: ClearQueryCacheInput,
    outputSchema: ClearQueryCacheOutput,
    annotations: {
      title: "Remove cached query results",
      readOnlyHint: false,
      destructiveHint: true,
      idempotentHint: true,
      openWorldHint: false,
    },
  }, async ({ query_id }: { query_id?: string }) => {
    const id = query_id?.trim();
    if (id === "") {
      // A blank id is a mistake, not a request to wipe everything.
      return errorResult(
        "query_id is empty: pass the query_id of the result to remove, or leave the field out to remove every cached result and plot.",
      );
    }
    const queries = new Set((await deps.results.list()).map((r) => r.queryId));
    const removed = await deps.results.remove(id);
    const removedQueries = removed.filter((r) => queries.has(r)).length;
    const removedPlots = removed.length - removedQueries;
    let text: string;
    if (id) {
      text = removed.length > 0
        ? `Removed the cached result ${removed[0]}; its query_id and link no longer work.`
        : `Nothing removed: no cached result has query_id "${id}" (unknown, expired or already removed).`;
    } else {
      text = removed.length > 0
        ? `Removed all cached data: ${removedQueries} query result${
          removedQueries === 1 ? "" : "s"
        } and ${removedPlots} plot${removedPlots === 1 ? "" : "s"}.`
        : "Nothing removed: the cache was already empty.";
    }
    return {
      structuredContent: {
        removed,
        removed_queries: removedQueries,
        removed_plots: removedPlots,
      },
      content: [{ type: "text" as const, text }],
    };
  });
}
