import { parseArgs } from "node:util";

/** Command-line flags of `main.ts`. */
export interface ServeFlags {
  /** Serve MCP over stdin/stdout for a command-launched client. */
  stdio: boolean;
  /** Also serve HTTPS on HTTPS_PORT with TLS_CERT_FILE/TLS_KEY_FILE. */
  https: boolean;
  help: boolean;
}

/** Usage text of `deno task serve`. */
export const SERVE_HELP = `Ambient Sensors MCP server

Usage: deno task serve [--https | --stdio]

  (no flag)  MCP over Streamable HTTP at http://HOST:PORT/mcp (default 127.0.0.1:8000)
  --https    HTTPS at https://HOST:HTTPS_PORT/mcp (TLS_CERT_FILE, TLS_KEY_FILE);
             plain HTTP then stays on 127.0.0.1:PORT only
  --stdio    MCP over stdin/stdout for clients that launch the server as a command
  --help     this text

Without DATABASE_URL the whole stack runs in this process: embedded PostgreSQL (PGlite) in
DATA_DIR, the collector, the silence monitor and, without MQTT_URL, an MQTT broker on
MQTT_LISTEN (default 127.0.0.1:1883). Configuration comes from the environment and ./.env (or
the file ENV_FILE names; the environment wins); see README.md. Exit status: 0 after a clean
stop, 1 when start-up fails, 2 for a bad flag or setting.`;

/** Parses `main.ts` flags; throws a `TypeError` naming the bad flag. */
export function parseFlags(args: string[]): ServeFlags {
  const { values } = parseArgs({
    args,
    options: {
      stdio: { type: "boolean", default: false },
      https: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.stdio && values.https) {
    throw new TypeError("Use either --stdio or --https, not both");
  }
  return { stdio: values.stdio!, https: values.https!, help: values.help! };
}
