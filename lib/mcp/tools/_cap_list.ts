// Long lists in tool answers: a cap, a note saying what was left out, and opaque page cursors.
import { encodeBase64 } from "./_base64.ts";

/** Items a list answer shows unless the caller asks for fewer or more. */
export const LIST_CAP = 200;

/** "Showing 200 of 3,000 sensors; filter by …." */
export function capNote(o: { shown: number; total: number; noun: string; hint: string }): string {
  const n = (x: number) => x.toLocaleString("en-US");
  return `Showing ${n(o.shown)} of ${n(o.total)} ${o.noun}; ${o.hint}.`;
}

/** An opaque cursor for the key of the last item shown. */
export function encodeCursor(key: string[]): string {
  return encodeBase64(new TextEncoder().encode(JSON.stringify(key))).replaceAll("+", "-")
    .replaceAll("/", "_").replace(/=+$/, "");
}

/** The key inside a cursor, or null when it is not one `encodeCursor` made for two strings. */
export function decodeCursor(cursor: string): [string, string] | null {
  try {
    const b64 = cursor.replaceAll("-", "+").replaceAll("_", "/");
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const v = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
    if (Array.isArray(v) && v.length === 2 && v.every((x) => typeof x === "string")) {
      return [v[0], v[1]];
    }
  } catch {
    // Not base64 or not JSON: refused below.
  }
  return null;
}
