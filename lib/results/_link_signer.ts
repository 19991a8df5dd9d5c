import { join } from "node:path";
import { type Ext, normalizeId } from "./_ids.ts";

/** Signs and checks `/files/{id}.{ext}?exp=…&sig=…` links with a secret kept in the data folder. */
export interface LinkSigner {
  /** The `sig` for a file name (`<id>.<ext>`) and an expiry in unix seconds. */
  sign(fileName: string, exp: number): Promise<string>;
  /** True when `sig` is the signature of `fileName` and `exp` (constant-time comparison). */
  verify(fileName: string, exp: number, sig: string): Promise<boolean>;
}

const SECRET_RE = /^[0-9a-f]{64}$/;

/**
 * HMAC-SHA256 over `<id>.<ext>:<exp>` with a 256-bit secret persisted in `DATA_DIR/link_secret`
 * (created with mode 0600 on first use), so links stay valid across restarts.
 */
export async function createLinkSigner(dataDir: string): Promise<LinkSigner> {
  return await linkSigner(hexBytes(await loadSecret(join(dataDir, "link_secret"))));
}

/** HMAC-SHA256 over `<id>.<ext>:<exp>` with the given key (`LINK_SECRET`, or a stored secret). */
export async function linkSigner(secret: Uint8Array): Promise<LinkSigner> {
  const key = await crypto.subtle.importKey(
    "raw",
    new Uint8Array(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
  const encoder = new TextEncoder();
  return {
    async sign(fileName, exp) {
      const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${fileName}:${exp}`));
      return toBase64Url(new Uint8Array(mac));
    },
    async verify(fileName, exp, sig) {
      const mac = fromBase64Url(sig);
      if (!mac || mac.length !== 32) return false;
      // Web Crypto's HMAC verify compares in constant time.
      return await crypto.subtle.verify(
        "HMAC",
        key,
        mac,
        encoder.encode(`${fileName}:${exp}`),
      );
    },
  };
}

/**
 * True when `params` (`exp`, `sig`) are a valid signature of `/files/<id>.<ext>` that has not
 * expired at `nowMs`; only the canonical (lower-case) spelling of an id is ever signed.
 */
export async function verifyLinkParams(
  signer: LinkSigner,
  link: { id: string; ext: Ext; params: URLSearchParams; nowMs: number },
): Promise<boolean> {
  const { id, ext, params } = link;
  if (!normalizeId(id) || id !== normalizeId(id) || (ext !== "csv" && ext !== "png")) {
    return false;
  }
  const expText = params.get("exp") ?? "";
  const sig = params.get("sig") ?? "";
  if (!/^\d{1,12}$/.test(expText)) return false;
  const exp = Number(expText);
  if (exp * 1000 <= link.nowMs) return false;
  return await signer.verify(`${id}.${ext}`, exp, sig);
}

async function loadSecret(path: string): Promise<string> {
  const secret = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const text = (await Deno.readTextFile(path)).trim();
      if (SECRET_RE.test(text)) return text;
      break; // damaged (e.g. an interrupted first write): replace it below
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    try {
      await Deno.writeTextFile(path, secret + "\n", { createNew: true, mode: 0o600 });
      return secret;
    } catch (error) {
      // Another process created it first: read theirs.
      if (!(error instanceof Deno.errors.AlreadyExists)) throw error;
    }
  }
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, secret + "\n", { createNew: true, mode: 0o600 });
  await Deno.rename(tmp, path);
  return secret;
}

function hexBytes(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

function toBase64Url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_")
    .replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> | undefined {
  if (!/^[A-Za-z0-9_-]{1,100}$/.test(text)) return undefined;
  try {
    const bin = atob(text.replaceAll("-", "+").replaceAll("_", "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}
