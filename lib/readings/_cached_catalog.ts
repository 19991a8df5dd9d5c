import type { Queryable } from "../db/mod.ts";
import { type Catalog, loadCatalog, loadFlexibleMetrics } from "./_catalog.ts";

/**
 * How long a loaded catalog is reused. Callers treat every lookup the cached catalog cannot
 * answer (an unknown sensor, device or metric, a missing table or column) as a miss and read it
 * again at once, so new devices, tables and metric columns are found on their first use. The
 * lifetime only bounds how long a changed unit, or a metric that a second sensor of the same
 * device starts writing to the flexible table, can go unnoticed.
 */
export const CATALOG_TTL_MS = 60_000;

/** A catalog as `cachedCatalog` hands it out. */
export interface CachedCatalog extends Catalog {
  /** True when it was read from the database by this call (a miss cannot be retried). */
  fresh: boolean;
  /** Metric names per sensor in the flexible table, loaded on demand and kept with the catalog. */
  flexibleMetrics(sensorIds: number[]): Promise<Map<number, string[]>>;
}

interface Entry {
  catalog: Catalog;
  loadedAt: number;
  flexible: Map<number, string[]>;
}

const entries = new WeakMap<object, Entry>();

/** Options of `cachedCatalog`. */
export interface CachedCatalogOptions {
  /** Read the catalog again even when the cached one is recent (default false). */
  fresh?: boolean;
  /** Clock in milliseconds (tests); default `Date.now`. */
  now?: () => number;
}

/**
 * The catalog of `db` (sensors, columnar metric columns, units), read at most every
 * `CATALOG_TTL_MS`, or afresh when `fresh` is set. Saves a catalog query on nearly every
 * history; each database object has its own cache.
 */
export async function cachedCatalog(
  db: Queryable,
  opts: CachedCatalogOptions = {},
): Promise<CachedCatalog> {
  const now = opts.now ?? Date.now;
  let entry = entries.get(db);
  let fresh = false;
  if (opts.fresh || !entry || now() - entry.loadedAt >= CATALOG_TTL_MS) {
    const catalog = await loadCatalog(db);
    entry = { catalog, loadedAt: now(), flexible: new Map() };
    entries.set(db, entry);
    fresh = true;
  }
  const { flexible } = entry;
  return {
    ...entry.catalog,
    fresh,
    async flexibleMetrics(sensorIds) {
      const missing = sensorIds.filter((id) => !flexible.has(id));
      if (missing.length > 0) {
        const loaded = await loadFlexibleMetrics(db, missing);
        for (const id of missing) flexible.set(id, loaded.get(id) ?? []);
      }
      return new Map(sensorIds.map((id) => [id, flexible.get(id)!]));
    },
  };
}
