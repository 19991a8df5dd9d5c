/**
 * Query results (CSV) and plots (PNG) with a TTL, a size budget and signed, expiring download
 * links: the `ResultStore` of `lib/mcp/deps.ts`, on disk under `DATA_DIR` (embedded database) or
 * shared in PostgreSQL by every server instance.
 *
 * @module
 */
export { createResultStore, type ResultStoreOptions } from "./create_result_store.ts";
export {
  createSharedResultStore,
  type SharedResultStoreOptions,
} from "./create_shared_result_store.ts";
export { openResultStore } from "./open_result_store.ts";
export { ResultGone } from "./_db_chunks.ts";
