/**
 * The MCP server: its factory, the HTTP handler for `Deno.serve` (MCP, health, result files),
 * the stdio runner, and the contract tools are written against.
 *
 * @module
 */
export { createMcpServer, SERVER_NAME, SERVER_VERSION } from "./server.ts";
export { createHttpHandler, type HttpHandlerOptions } from "./http_handler.ts";
export { serveStdio, type StdioServer } from "./stdio.ts";
export { registerAll } from "./tools/mod.ts";
export type { RegisterTool, ResultStore, SavedResult, StoredFile, ToolDeps } from "./deps.ts";
