import { ErrorCode } from "@modelcontextprotocol/sdk/types.js";

/**
 * A JSON-RPC "invalid params" error (-32602) whose message is exactly `message`. The SDK's
 * `McpError` puts "MCP error -32602: " into the message, and clients add the same prefix again
 * when they show it; this error carries the code without the prefix.
 */
export class InvalidParams extends Error {
  readonly code = ErrorCode.InvalidParams;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "InvalidParams";
  }
}
