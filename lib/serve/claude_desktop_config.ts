import { permissionFlags } from "../process/mod.ts";

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
  /**
   * The server's environment: the configuration variables set in it (DATABASE_URL, MQTT_LISTEN,
   * …) are repeated in the stdio form so that server uses the same database and broker; secrets
   * are replaced by placeholders.
   */
  env?: Record<string, string | undefined>;
  /** The `deno run` permission flags; default: those of `deno task serve` for `dataDir`. */
  permissions?: string[];
  /**
   * The `.env` file the server read: the stdio form names it in ENV_FILE, so its settings
   * (secrets included) need not be repeated; the variables in `fromFile` are left out.
   */
  envFile?: string;
  /** The variables whose value came from `envFile`. */
  fromFile?: ReadonlySet<string>;
}

/** Variables of the configuration that the stdio form repeats (DATA_DIR is always set). */
const PASSED = [
  "PORT",
  "SERVER_URL",
  "DATABASE_URL",
  "DB_HOST",
  "DB_PORT",
  "DB_USER",
  "DB_PASSWORD",
  "DB_NAME",
  "MQTT_URL",
  "MQTT_BROKER",
  "MQTT_PORT",
  "MQTT_USERNAME",
  "MQTT_PASSWORD",
  "MQTT_CLIENT_ID",
  "MQTT_SHARED_GROUP",
  "MQTT_LISTEN",
  "JOURNAL_MAX_MB",
  "STORAGE_LAYOUTS",
  "QUERY_TIMEOUT_S",
  "QUERY_MAX_ROWS",
  "QUERY_CACHE_TTL_H",
  "QUERY_CACHE_MAX_MB",
  "SANDBOX_ENGINE",
  "SANDBOX_IMAGE",
  "DOCKER_IMAGE",
  "SANDBOX_MEMORY_MB",
  "SANDBOX_TIMEOUT_S",
  "PUSHOVER_USER",
  "PUSHOVER_TOKEN",
  "PUSHOVER_API_URL",
  "CHECK_INTERVAL",
  "INACTIVITY_THRESHOLD",
];
const SECRET = new Set(["DB_PASSWORD", "MQTT_PASSWORD", "PUSHOVER_USER", "PUSHOVER_TOKEN"]);

/** The configuration variables set in `env`, with passwords and tokens as placeholders. */
function passedEnv(
  env: Record<string, string | undefined>,
  fromFile: ReadonlySet<string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of PASSED) {
    const value = env[name];
    if (fromFile.has(name)) continue;
    if (value === undefined || value === "") continue;
    if (SECRET.has(name)) out[name] = `<your ${name}>`;
    else if (name.endsWith("_URL")) out[name] = withoutPassword(value, name);
    else out[name] = value;
  }
  return out;
}

function withoutPassword(value: string, name: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return `<your ${name}>`;
  }
  if (!u.password) return value;
  u.password = "PASSWORD";
  return u.toString().replace(":PASSWORD@", ":<password>@");
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
      ...(opts.permissions ?? permissionFlags("serve", { dataDir: opts.dataDir })),
      "--config",
      `${opts.projectDir}/deno.json`,
      `${opts.projectDir}/main.ts`,
      "--stdio",
    ],
    env: {
      ...passedEnv(opts.env ?? {}, opts.envFile ? opts.fromFile ?? new Set() : new Set()),
      ...(opts.envFile ? { ENV_FILE: opts.envFile } : {}),
      DATA_DIR: opts.dataDir,
    },
  };
  return {
    remote: { mcpServers: { "ambient-sensors": remote } },
    stdio: { mcpServers: { "ambient-sensors": stdio } },
  };
}
