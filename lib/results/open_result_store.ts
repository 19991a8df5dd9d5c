import type { Db } from "../db/mod.ts";
import type { ResultStore } from "../mcp/deps.ts";
import { createResultStore, type ResultStoreOptions } from "./create_result_store.ts";
import { createSharedResultStore } from "./create_shared_result_store.ts";

/**
 * The result store for a server on `db`: shared in PostgreSQL (every instance on the database
 * sees every result and link), or on disk under `DATA_DIR` with the embedded database.
 */
export async function openResultStore(
  db: Db,
  opts: ResultStoreOptions,
): Promise<{ store: ResultStore; location: "database" | "disk" }> {
  if (db.kind === "postgres") {
    return { store: await createSharedResultStore({ ...opts, db }), location: "database" };
  }
  return { store: await createResultStore(opts), location: "disk" };
}
