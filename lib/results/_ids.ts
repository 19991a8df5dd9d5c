/** Matches the ids the stores hand out (random UUIDs, lower case); nothing else reaches a path. */
export const ID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The kinds of stored files. */
export type Ext = "csv" | "png";

/** The canonical (lower-case) id, or undefined when `id` is not a UUID. */
export function normalizeId(id: string): string | undefined {
  const lower = typeof id === "string" ? id.toLowerCase() : "";
  return ID_RE.test(lower) ? lower : undefined;
}
