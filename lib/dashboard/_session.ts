// Dashboard sessions: the token is typed once on the login page; the browser then holds a signed,
// expiring session cookie whose value never contains the token (see README, "Dashboard").

const encoder = new TextEncoder();

/** Name of the session cookie. */
export const SESSION_COOKIE = "ambient_session";

/** How long a session lasts. */
export const SESSION_TTL_S = 30 * 86_400;

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Signs and checks session cookies with a key derived from MCP_AUTH_TOKEN. */
export class SessionSigner {
  #key: Promise<CryptoKey>;
  #token: Promise<Uint8Array>;

  constructor(token: string) {
    // The signing key is HMAC(token, label): changing the token ends every session.
    this.#key = (async () => {
      const base = await crypto.subtle.importKey(
        "raw",
        encoder.encode(token),
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign"],
      );
      const derived = await crypto.subtle.sign(
        "HMAC",
        base,
        encoder.encode("ambient-sensors dashboard session v1"),
      );
      return crypto.subtle.importKey(
        "raw",
        derived,
        { name: "HMAC", hash: "SHA-256" },
        false,
        ["sign", "verify"],
      );
    })();
    this.#token = crypto.subtle.digest("SHA-256", encoder.encode(token)).then((d) =>
      new Uint8Array(d)
    );
  }

  /** True when `given` is the token; the comparison takes the same time whatever `given` is. */
  async tokenMatches(given: string): Promise<boolean> {
    const a = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(given)));
    const b = await this.#token;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  /** A new cookie value: `<expiry unix s>.<random id>.<HMAC of both>`. */
  async issue(now = Date.now()): Promise<string> {
    const exp = Math.floor(now / 1000) + SESSION_TTL_S;
    const id = b64url(crypto.getRandomValues(new Uint8Array(16)));
    const body = `${exp}.${id}`;
    const sig = new Uint8Array(
      await crypto.subtle.sign("HMAC", await this.#key, encoder.encode(body)),
    );
    return `${body}.${b64url(sig)}`;
  }

  /** True for an unexpired cookie value this signer issued. */
  async verify(value: string | undefined, now = Date.now()): Promise<boolean> {
    if (!value || value.length > 200) return false;
    const m = /^(\d{1,12})\.([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$/.exec(value);
    if (!m) return false;
    if (Number(m[1]) * 1000 <= now) return false;
    const sig = Uint8Array.from(
      atob(m[3].replace(/-/g, "+").replace(/_/g, "/") + "="),
      (c) => c.charCodeAt(0),
    );
    return await crypto.subtle.verify(
      "HMAC",
      await this.#key,
      sig,
      encoder.encode(`${m[1]}.${m[2]}`),
    );
  }
}

/** The value of cookie `name` in a `Cookie` header, if present. */
export function readCookie(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}
