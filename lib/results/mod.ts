/**
 * Query results (CSV) and plots (PNG) on disk under `DATA_DIR`, with a TTL, a size budget and
 * signed, expiring download links: the `ResultStore` of `lib/mcp/deps.ts`.
 *
 * @module
 */
export { createResultStore, type ResultStoreOptions } from "./create_result_store.ts";
