import type { McpServer } from "@modelcontextprotocol/sdk/server/mcp.js";
import type { Db } from "../db/mod.ts";
import type { ResolvedServeConfig } from "../config/mod.ts";
import type { Sandbox } from "../sandbox/mod.ts";

/** A result set saved as CSV (on disk under `DATA_DIR/queries/`, or in PostgreSQL). */
export interface SavedResult {
  queryId: string;
  rowCount: number;
  bytes: number;
}

/** A stored CSV or PNG as a stream; cancel `body` when it is not read to the end. */
export interface StoredFile {
  /** Length in bytes. */
  size: number;
  /** The bytes; errors (instead of ending early) when the result is removed while it is read. */
  body: ReadableStream<Uint8Array>;
}

/**
 * Query results and plots with signed, expiring links: on disk under `DATA_DIR` (embedded
 * database), or in PostgreSQL where every server instance sees them. Implemented in
 * `lib/results/`. Ids are random UUIDs; nothing outside the store is ever reachable through it.
 */
export interface ResultStore {
  /** Writes a result set as CSV (header row first) and returns its new id. */
  saveCsv(columns: string[], rows: Iterable<unknown[]>): Promise<SavedResult>;
  /**
   * Path of a cached CSV on this machine (for the sandbox), or undefined when the id is unknown
   * or expired. The shared store writes a local copy from the database first.
   */
  csvPath(queryId: string): Promise<string | undefined>;
  /** Reserves a new plot id and the local path its PNG must be written to. */
  newPlot(): Promise<{ plotId: string; path: string }>;
  /** Stores the PNG written to `newPlot()`'s path, so links and other instances can serve it. */
  storePlot(plotId: string): Promise<void>;
  /** A signed, expiring absolute URL under SERVER_URL for `/files/{id}.csv` or `.png`. */
  fileUrl(id: string, ext: "csv" | "png"): Promise<string>;
  /** Removes one cached result (or all when no id); returns the ids removed. */
  remove(queryId?: string): Promise<string[]>;
  /** Cached query results, newest first (for MCP resources). */
  list(): Promise<{ queryId: string; rowCount: number; bytes: number; createdAt: Date }[]>;
  /**
   * Path of a cached CSV or plot PNG for the `/files/{id}.{ext}` route, without checking any
   * signature; undefined when unknown, expired or not a well-formed id.
   */
  filePath(id: string, ext: "csv" | "png"): Promise<string | undefined>;
  /** A cached CSV or plot PNG as a stream, for `/files` and `query://`; undefined when gone. */
  openFile(id: string, ext: "csv" | "png"): Promise<StoredFile | undefined>;
  /** True when `params` (the link's query string, e.g. `exp` and `sig`) is a valid, unexpired signature for `/files/{id}.{ext}`. */
  verifyLink(id: string, ext: "csv" | "png", params: URLSearchParams): Promise<boolean>;
}

/** Everything a tool handler may use; passed to every `registerXTool(server, deps)`. */
export interface ToolDeps {
  db: Db;
  config: ResolvedServeConfig;
  results: ResultStore;
  /** The analysis sandbox; undefined when `SANDBOX_ENGINE=off` or no engine is installed. */
  sandbox?: Sandbox;
}

/** Signature every tool module exports. */
export type RegisterTool = (server: McpServer, deps: ToolDeps) => void;
