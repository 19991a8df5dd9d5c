/** What the printed Claude Desktop configuration is built from. */
export interface ClaudeDesktopConfigOptions {
  /** The MCP endpoint, e.g. `http://127.0.0.1:8000/mcp`. */
  mcpUrl: string;
  /** True when MCP_AUTH_TOKEN is set (the token itself is never printed). */
  token: boolean;
  /** Absolute path of the project folder (holding deno.json and main.ts). */
  projectDir: string;
  /** Absolute DATA_DIR, so the stdio form uses the same data wherever Claude starts it. */
  dataDir: string;
  /** The deno executable, or the compiled server binary. */
  denoPath: string;
  /** True when `denoPath` is a `deno compile`d server, which takes `--stdio` directly. */
  compiled?: boolean;
}

/**
 * The two `mcpServers` entries for Claude Desktop's `claude_desktop_config.json`: the running
 * HTTP server through `npx mcp-remote`, and the stdio form that launches the server itself.
 */
export function claudeDesktopConfig(opts: ClaudeDesktopConfigOptions): {
  remote: unknown;
  stdio: unknown;
} {
  const url = new URL(opts.mcpUrl);
  const args = ["-y", "mcp-remote", opts.mcpUrl];
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol === "http:" && !local) args.push("--allow-http");
  const remote: Record<string, unknown> = { command: "npx", args };
  if (opts.token) {
    // No spaces inside the argument: some clients split arguments on spaces.
    args.push("--header", "Authorization:Bearer ${MCP_AUTH_TOKEN}");
    remote.env = { MCP_AUTH_TOKEN: "<the server's MCP_AUTH_TOKEN>" };
  }
  const stdio = {
    command: opts.denoPath,
    args: opts.compiled ? ["--stdio"] : [
      "run",
      "-P=serve",
      "--config",
      `${opts.projectDir}/deno.json`,
      `${opts.projectDir}/main.ts`,
      "--stdio",
    ],
    env: { DATA_DIR: opts.dataDir },
  };
  return {
    remote: { mcpServers: { "ambient-sensors": remote } },
    stdio: { mcpServers: { "ambient-sensors": stdio } },
  };
}
