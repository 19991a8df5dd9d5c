import { deepEqual, ok } from "node:assert/strict";
import { claudeDesktopConfig } from "./claude_desktop_config.ts";

const base = {
  projectDir: "/opt/ambient",
  dataDir: "/opt/ambient/data",
  denoPath: "/usr/bin/deno",
};

Deno.test("claudeDesktopConfig() bridges a local URL with mcp-remote and launches stdio with deno", () => {
  const c = claudeDesktopConfig({ ...base, mcpUrl: "http://127.0.0.1:8000/mcp", token: false });
  deepEqual(c.remote, {
    mcpServers: {
      "ambient-sensors": {
        command: "npx",
        args: ["-y", "mcp-remote", "http://127.0.0.1:8000/mcp"],
      },
    },
  });
  deepEqual(c.stdio, {
    mcpServers: {
      "ambient-sensors": {
        command: "/usr/bin/deno",
        args: [
          "run",
          "--allow-net",
          "--allow-env",
          "--allow-read",
          "--allow-write=/opt/ambient/data",
          "--allow-sys=hostname,osRelease,networkInterfaces",
          "--allow-run=docker,bwrap,/usr/bin/python3",
          "--config",
          "/opt/ambient/deno.json",
          "/opt/ambient/main.ts",
          "--stdio",
        ],
        env: { DATA_DIR: "/opt/ambient/data" },
      },
    },
  });
});

Deno.test("claudeDesktopConfig() adds the token header and --allow-http for a LAN address", () => {
  const c = claudeDesktopConfig({ ...base, mcpUrl: "http://192.168.1.20:8000/mcp", token: true });
  deepEqual(c.remote, {
    mcpServers: {
      "ambient-sensors": {
        command: "npx",
        args: [
          "-y",
          "mcp-remote",
          "http://192.168.1.20:8000/mcp",
          "--allow-http",
          "--header",
          "Authorization:Bearer ${MCP_AUTH_TOKEN}",
        ],
        env: { MCP_AUTH_TOKEN: "<the server's MCP_AUTH_TOKEN>" },
      },
    },
  });
});

Deno.test("claudeDesktopConfig() launches a compiled server binary with --stdio alone", () => {
  const c = claudeDesktopConfig({
    ...base,
    denoPath: "/usr/local/bin/ambient-sensors-aarch64",
    compiled: true,
    mcpUrl: "http://127.0.0.1:8000/mcp",
    token: false,
  });
  deepEqual(c.stdio, {
    mcpServers: {
      "ambient-sensors": {
        command: "/usr/local/bin/ambient-sensors-aarch64",
        args: ["--stdio"],
        env: { DATA_DIR: "/opt/ambient/data" },
      },
    },
  });
});

Deno.test("claudeDesktopConfig() repeats the server's database and broker settings in the stdio form, without secrets", () => {
  const c = claudeDesktopConfig({
    ...base,
    mcpUrl: "http://127.0.0.1:8000/mcp",
    token: false,
    env: {
      DATABASE_URL: "postgres://sensors:s3cr%40t@db.lan:5432/sensors",
      MQTT_URL: "mqtt://broker.lan:1883",
      MQTT_PASSWORD: "hunter2",
      MQTT_LISTEN: "127.0.0.1:1884",
      PUSHOVER_TOKEN: "tok123",
      HOME: "/root",
      PATH: "/usr/bin",
      DATA_DIR: "./data",
    },
  });
  const env = (c.stdio as { mcpServers: Record<string, { env: Record<string, string> }> })
    .mcpServers["ambient-sensors"].env;
  deepEqual(env, {
    DATABASE_URL: "postgres://sensors:<password>@db.lan:5432/sensors",
    MQTT_URL: "mqtt://broker.lan:1883",
    MQTT_PASSWORD: "<your MQTT_PASSWORD>",
    MQTT_LISTEN: "127.0.0.1:1884",
    PUSHOVER_TOKEN: "<your PUSHOVER_TOKEN>",
    DATA_DIR: "/opt/ambient/data",
  });
});

Deno.test("claudeDesktopConfig() names the .env the server read instead of repeating its settings", () => {
  const c = claudeDesktopConfig({
    ...base,
    dataDir: "/var/lib/ambient sensors",
    mcpUrl: "http://127.0.0.1:8000/mcp",
    token: false,
    env: { DB_HOST: "db.local", DB_PASSWORD: "s3cret", MQTT_LISTEN: "127.0.0.1:1884" },
    envFile: "/opt/ambient/.env",
    fromFile: new Set(["DB_HOST", "DB_PASSWORD"]),
  });
  const entry = (c.stdio as { mcpServers: Record<string, { args: string[]; env: unknown }> })
    .mcpServers["ambient-sensors"];
  deepEqual(entry.env, {
    MQTT_LISTEN: "127.0.0.1:1884",
    ENV_FILE: "/opt/ambient/.env",
    DATA_DIR: "/var/lib/ambient sensors",
  });
  // One argument per flag: a DATA_DIR with a space stays one argument for Claude Desktop.
  deepEqual(entry.args.filter((a) => a.startsWith("--allow-write")), [
    "--allow-write=/var/lib/ambient sensors",
  ]);
  ok(!JSON.stringify(c).includes("s3cret"));
  ok(!entry.args.some((a) => a.startsWith("-P") || a === "-A" || a === "--allow-all"));
});
