// The official MCP conformance suite (npm:@modelcontextprotocol/conformance, run under Deno)
// against `deno task serve`: the scenarios that apply to a stateless tools/resources/prompts
// server with logging.
import { equal, match } from "node:assert/strict";
import { startSeededServe } from "./fixtures/dashboard_server.ts";

const CONFORMANCE = "npm:@modelcontextprotocol/conformance@0.1.16";
const SCENARIOS = [
  "server-initialize",
  "ping",
  "tools-list",
  "resources-list",
  "prompts-list",
  "logging-set-level",
  "dns-rebinding-protection",
];

Deno.test({
  name: "MCP conformance scenarios pass against deno task serve",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await using server = await startSeededServe();
    // Outside the project (no deno.json or lock file of ours), as a user would run it.
    const cwd = await Deno.makeTempDir({ prefix: "conformance-" });
    try {
      for (const scenario of SCENARIOS) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--no-config",
            "--no-lock",
            CONFORMANCE,
            "server",
            "--url",
            `${server.base}/mcp`,
            "--scenario",
            scenario,
          ],
          cwd,
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
        equal(out.code, 0, `${scenario}:\n${text}`);
        match(text, /Passed: (\d+)\/\1, 0 failed/, `${scenario}:\n${text}`);
      }
    } finally {
      await Deno.remove(cwd, { recursive: true });
    }
  },
});
