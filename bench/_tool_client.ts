import { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { InMemoryTransport } from "@modelcontextprotocol/sdk/inMemory.js";
import type { RegisterTool, ToolDeps } from "../lib/mcp/deps.ts";

/** A tool call's result as the SDK client returns it. */
export type ToolResult = Awaited<ReturnType<Client["callTool"]>>;

/** An MCP client connected in memory to a server with the given tools. */
export interface ToolClient {
  /** Calls `name`; throws when the tool answers with an error. */
  call(name: string, args: Record<string, unknown>): Promise<ToolResult>;
  close(): Promise<void>;
}

/**
 * A server with the tools `register` adds and an SDK client over an in-memory transport, so a
 * benchmark times what an assistant's call costs: validation, the tool, its output schema.
 */
export async function connectTools(
  deps: ToolDeps,
  register: RegisterTool[],
): Promise<ToolClient> {
  const server = new McpServer({ name: "bench", version: "0" });
  for (const r of register) r(server, deps);
  const [a, b] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: "bench", version: "0" });
  await Promise.all([server.connect(a), client.connect(b)]);
  await client.listTools();
  return {
    async call(name, args) {
      const r = await client.callTool({ name, arguments: args });
      if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
      return r;
    },
    async close() {
      await client.close();
      await server.close();
    },
  };
}
