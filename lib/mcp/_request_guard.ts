// Host/Origin validation (DNS-rebinding protection) and the bearer-token check of the HTTP routes.

const WILDCARD = new Set(["0.0.0.0", "::", "[::]"]);

function bracket(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

/** What the allowed `Host` values are built from. */
export interface AllowedHostsOptions {
  /** The configured `HOST`. */
  host: string;
  /** The ports actually listened on (HTTP and, with `--https`, HTTPS). */
  ports: number[];
  /** `SERVER_URL`, whose host is always accepted. */
  serverUrl: string;
  /** Extra names the machine answers to (interface addresses, hostname) for a wildcard HOST. */
  machineNames?: string[];
}

/**
 * The `host[:port]` values (lower case) a request may carry in `Host`, or whose `Origin` may call
 * `/mcp`: the configured host and the loopback names on each listening port, plus SERVER_URL's
 * host; on a wildcard HOST also the machine's own names.
 */
export function allowedHosts(opts: AllowedHostsOptions): Set<string> {
  const names = new Set(["localhost", "127.0.0.1", "[::1]"]);
  if (!WILDCARD.has(opts.host)) names.add(bracket(opts.host.toLowerCase()));
  else for (const n of opts.machineNames ?? []) names.add(bracket(n.toLowerCase()));
  const out = new Set<string>();
  for (const name of names) {
    for (const p of opts.ports) {
      out.add(`${name}:${p}`);
      if (p === 80 || p === 443) out.add(name); // clients omit the default port
    }
  }
  try {
    out.add(new URL(opts.serverUrl).host.toLowerCase());
  } catch {
    // SERVER_URL was validated by the config loader; nothing to add when it is unusable.
  }
  return out;
}

/** The machine's interface addresses and host name, for a server bound to all interfaces. */
export function machineNames(): string[] {
  const out: string[] = [];
  try {
    out.push(Deno.hostname());
    out.push(`${Deno.hostname()}.local`);
  } catch {
    // no sys permission for the hostname: the addresses below still work
  }
  try {
    for (const i of Deno.networkInterfaces()) out.push(i.address.replace(/%.*$/, ""));
  } catch {
    // no sys permission for the interfaces: SERVER_URL and loopback still work
  }
  return out;
}

/** Why a request was refused by `checkHostAndOrigin`, or undefined when it may proceed. */
export function checkHostAndOrigin(
  req: Request,
  allowed: Set<string>,
  opts: { checkOrigin: boolean },
): string | undefined {
  const host = (req.headers.get("host") ?? new URL(req.url).host).toLowerCase();
  if (!allowed.has(host)) return `Host "${host.slice(0, 100)}" is not allowed`;
  if (!opts.checkOrigin) return undefined;
  const origin = req.headers.get("origin");
  if (origin === null) return undefined; // non-browser clients send none
  let originHost: string;
  try {
    const u = new URL(origin);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new TypeError("scheme");
    originHost = u.host.toLowerCase();
    // URL.host drops default ports; a browser sends them implicitly.
    if (!u.port) originHost += u.protocol === "https:" ? ":443" : ":80";
    if (allowed.has(u.host.toLowerCase()) || allowed.has(originHost)) return undefined;
  } catch {
    // "null" or garbage: a sandboxed or opaque origin is never ours
  }
  return `Origin "${origin.slice(0, 100)}" is not allowed`;
}

const encoder = new TextEncoder();

/**
 * True when `header` is `Bearer <token>`. Both sides are hashed first so the comparison takes
 * the same time whatever the length or the first differing byte.
 */
export async function bearerMatches(header: string | null, token: string): Promise<boolean> {
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? "");
  const given = m ? m[1] : "";
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(given)),
    crypto.subtle.digest("SHA-256", encoder.encode(token)),
  ]);
  const x = new Uint8Array(a);
  const y = new Uint8Array(b);
  let diff = m ? 0 : 1;
  for (let i = 0; i < x.length; i++) diff |= x[i] ^ y[i];
  return diff === 0;
}
