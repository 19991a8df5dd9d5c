import process from "node:process";
import { StdioServerTransport } from "@modelcontextprotocol/sdk/server/stdio.js";
import { logger } from "../log/mod.ts";
import type { ToolDeps } from "./deps.ts";
import { createMcpServer } from "./server.ts";

const log = logger("mcp");

/** A running stdio server. */
export interface StdioServer {
  /** Resolves when the client closes stdin (it went away) or `close()` was called. */
  readonly closed: Promise<void>;
  /** Stops reading stdin and closes the MCP server (idempotent). */
  close(): Promise<void>;
}

/**
 * Serves MCP over stdin/stdout for command-launched clients (Claude Desktop's `command` entry).
 * stdout carries only JSON-RPC messages; all logging goes to stderr.
 */
export async function serveStdio(deps: ToolDeps): Promise<StdioServer> {
  const server = createMcpServer(deps);
  const transport = new StdioServerTransport();
  let done!: () => void;
  const closed = new Promise<void>((r) => done = r);
  const onEnd = () => {
    log.info("stdin closed by the client");
    done();
  };
  process.stdin.once("end", onEnd);
  process.stdin.once("close", onEnd);
  transport.onerror = (error: Error) => log.warn("stdio transport error", { error });
  await server.connect(transport);
  let closing: Promise<void> | undefined;
  return {
    closed,
    close() {
      closing ??= (async () => {
        process.stdin.off("end", onEnd);
        process.stdin.off("close", onEnd);
        await server.close();
        done();
      })();
      return closing;
    },
  };
}
