import { join, resolve, sep } from "node:path";
import type { ResultStore, SavedResult, StoredFile } from "../mcp/deps.ts";
import { csvPieces } from "./_csv_text.ts";
import { type Ext, ID_RE, normalizeId } from "./_ids.ts";
import { createLinkSigner, type LinkSigner, linkSigner, verifyLinkParams } from "./_link_signer.ts";

/** Options of `createResultStore`. */
export interface ResultStoreOptions {
  /** `DATA_DIR`; results go to `queries/`, plots to `plots/`, the link secret to `link_secret`. */
  dataDir: string;
  /** `SERVER_URL` without a trailing slash; links are `SERVER_URL/files/<id>.<ext>?exp=…&sig=…`. */
  serverUrl: string;
  /** Hours a result or plot is kept (`QUERY_CACHE_TTL_H`); also the lifetime of its links. */
  ttlH: number;
  /** Disk budget in bytes (`QUERY_CACHE_MAX_MB`); past it the oldest files are evicted. */
  maxBytes: number;
  /** `LINK_SECRET`: signs links instead of the stored secret (the same on every instance). */
  linkSecret?: string;
  /** Clock in milliseconds (tests); default `Date.now`. */
  now?: () => number;
}

interface Entry {
  id: string;
  ext: Ext;
  rowCount: number;
  bytes: number;
  createdAt: number;
}

/**
 * Opens the on-disk store of query results (CSV) and plots (PNG) under `dataDir`, loading what a
 * previous run left there. Files are written once (temp name, then rename), kept `ttlH` hours and
 * evicted oldest-first past `maxBytes` (the newest file is always kept). Links are signed with
 * HMAC-SHA256 and expire with the file.
 */
export async function createResultStore(opts: ResultStoreOptions): Promise<ResultStore> {
  const dataDir = resolve(opts.dataDir);
  const queries = join(dataDir, "queries");
  const plots = join(dataDir, "plots");
  await Deno.mkdir(queries, { recursive: true, mode: 0o700 });
  await Deno.mkdir(plots, { recursive: true, mode: 0o700 });
  const signer = opts.linkSecret
    ? await linkSigner(new TextEncoder().encode(opts.linkSecret))
    : await createLinkSigner(dataDir);
  const store = new DiskResultStore({ ...opts, queries, plots, signer });
  await store.load();
  return store;
}

class DiskResultStore implements ResultStore {
  #queries: string;
  #plots: string;
  #serverUrl: string;
  #ttlMs: number;
  #maxBytes: number;
  #now: () => number;
  #signer: LinkSigner;
  #root: string;
  #realRoot: string | undefined;
  #entries = new Map<string, Entry>();
  #lock: Promise<unknown> = Promise.resolve();

  constructor(o: ResultStoreOptions & { queries: string; plots: string; signer: LinkSigner }) {
    this.#queries = o.queries;
    this.#plots = o.plots;
    this.#serverUrl = o.serverUrl.replace(/\/+$/, "");
    this.#ttlMs = o.ttlH * 3_600_000;
    this.#maxBytes = o.maxBytes;
    this.#now = o.now ?? Date.now;
    this.#signer = o.signer;
    this.#root = resolve(o.dataDir);
  }

  /** Indexes the files a previous run left; drops leftovers of interrupted writes. */
  async load(): Promise<void> {
    for await (const f of Deno.readDir(this.#queries)) {
      const path = join(this.#queries, f.name);
      if (f.name.startsWith(".") && f.name.endsWith(".tmp")) {
        await removeFile(path);
        continue;
      }
      const m = /^(.+)\.(csv|json)$/.exec(f.name);
      if (!m || !ID_RE.test(m[1]) || this.#entries.has(m[1])) continue;
      const id = m[1];
      const meta = await readMeta(join(this.#queries, `${id}.json`));
      const csv = await Deno.stat(join(this.#queries, `${id}.csv`)).catch(() => undefined);
      if (meta && csv?.isFile) {
        this.#entries.set(id, { id, ext: "csv", ...meta, bytes: csv.size });
      } else {
        await removeFile(join(this.#queries, `${id}.csv`));
        await removeFile(join(this.#queries, `${id}.json`));
      }
    }
    for await (const f of Deno.readDir(this.#plots)) {
      const m = /^(.+)\.png$/.exec(f.name);
      if (!m || !ID_RE.test(m[1])) continue;
      const st = await Deno.stat(join(this.#plots, f.name));
      const createdAt = st.mtime?.getTime() ?? this.#now();
      this.#entries.set(m[1], { id: m[1], ext: "png", rowCount: 0, bytes: st.size, createdAt });
    }
    await this.#sweep();
  }

  async saveCsv(columns: string[], rows: Iterable<unknown[]>): Promise<SavedResult> {
    const id = crypto.randomUUID();
    const tmp = join(this.#queries, `.${id}.csv.tmp`);
    let rowCount = 0;
    let bytes = 0;
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      try {
        for (const piece of csvPieces(columns, rows, () => rowCount++)) {
          bytes += await writeAll(file, piece);
        }
      } finally {
        file.close();
      }
      const createdAt = this.#now();
      const metaTmp = join(this.#queries, `.${id}.json.tmp`);
      await Deno.writeTextFile(metaTmp, JSON.stringify({ rowCount, createdAt }), { mode: 0o600 });
      await Deno.rename(metaTmp, join(this.#queries, `${id}.json`));
      await Deno.rename(tmp, join(this.#queries, `${id}.csv`));
      this.#entries.set(id, { id, ext: "csv", rowCount, bytes, createdAt });
      await this.#sweep();
      return { queryId: id, rowCount, bytes };
    } catch (error) {
      await removeFile(tmp);
      await removeFile(join(this.#queries, `.${id}.json.tmp`));
      throw error;
    }
  }

  csvPath(queryId: string): Promise<string | undefined> {
    return this.filePath(queryId, "csv");
  }

  async newPlot(): Promise<{ plotId: string; path: string }> {
    const plotId = crypto.randomUUID();
    this.#entries.set(plotId, {
      id: plotId,
      ext: "png",
      rowCount: 0,
      bytes: 0,
      createdAt: this.#now(),
    });
    await this.#sweep();
    return { plotId, path: this.#path(plotId, "png") };
  }

  async storePlot(plotId: string): Promise<void> {
    const entry = this.#live(plotId, "png");
    if (!entry) throw new RangeError(`No reserved plot with id "${plotId}"`);
    entry.bytes = (await Deno.stat(this.#path(entry.id, "png"))).size;
    await this.#sweep();
  }

  async openFile(id: string, ext: Ext): Promise<StoredFile | undefined> {
    const path = await this.filePath(id, ext);
    if (!path) return undefined;
    let file: Deno.FsFile;
    try {
      // Defence in depth: only regular files under DATA_DIR are ever opened.
      const real = await Deno.realPath(path);
      this.#realRoot ??= await Deno.realPath(this.#root);
      if (!real.startsWith(this.#realRoot + sep) || !real.endsWith(`.${ext}`)) return undefined;
      file = await Deno.open(real, { read: true });
    } catch (error) {
      if (error instanceof Deno.errors.NotFound) return undefined;
      throw error;
    }
    const { size } = await file.stat();
    return { size, body: file.readable };
  }

  async fileUrl(id: string, ext: Ext): Promise<string> {
    const entry = this.#live(id, ext);
    if (!entry) throw new RangeError(`No cached ${ext} file with id "${id}"`);
    const exp = this.#expiresAt(entry);
    const sig = await this.#signer.sign(`${entry.id}.${ext}`, exp);
    return `${this.#serverUrl}/files/${entry.id}.${ext}?exp=${exp}&sig=${sig}`;
  }

  async remove(queryId?: string): Promise<string[]> {
    return await this.#locked(async () => {
      let targets: Entry[];
      if (queryId === undefined) {
        const all = [...this.#entries.values()];
        targets = [...all.filter((e) => e.ext === "csv"), ...all.filter((e) => e.ext === "png")];
      } else {
        const entry = this.#entries.get(normalizeId(queryId) ?? "");
        targets = entry ? [entry] : [];
      }
      for (const e of targets) await this.#delete(e);
      return targets.map((e) => e.id);
    });
  }

  async list(): Promise<{ queryId: string; rowCount: number; bytes: number; createdAt: Date }[]> {
    await this.#sweep();
    return [...this.#entries.values()]
      .filter((e) => e.ext === "csv")
      .sort((a, b) => b.createdAt - a.createdAt)
      .map((e) => ({
        queryId: e.id,
        rowCount: e.rowCount,
        bytes: e.bytes,
        createdAt: new Date(e.createdAt),
      }));
  }

  async filePath(id: string, ext: Ext): Promise<string | undefined> {
    const entry = this.#live(id, ext);
    if (!entry) return undefined;
    const path = this.#path(entry.id, ext);
    const st = await Deno.stat(path).catch(() => undefined);
    return st?.isFile ? path : undefined;
  }

  verifyLink(id: string, ext: Ext, params: URLSearchParams): Promise<boolean> {
    return verifyLinkParams(this.#signer, { id, ext, params, nowMs: this.#now() });
  }

  /** The entry for a well-formed, known, unexpired id of that kind. */
  #live(id: string, ext: Ext): Entry | undefined {
    const key = normalizeId(id);
    const entry = key ? this.#entries.get(key) : undefined;
    if (!entry || entry.ext !== ext) return undefined;
    return this.#expiresAt(entry) * 1000 > this.#now() ? entry : undefined;
  }

  #expiresAt(e: Entry): number {
    return Math.floor((e.createdAt + this.#ttlMs) / 1000);
  }

  #path(id: string, ext: Ext): string {
    return join(ext === "csv" ? this.#queries : this.#plots, `${id}.${ext}`);
  }

  async #delete(e: Entry): Promise<void> {
    this.#entries.delete(e.id);
    await removeFile(this.#path(e.id, e.ext));
    if (e.ext === "csv") await removeFile(join(this.#queries, `${e.id}.json`));
  }

  /** Drops expired files, then the oldest ones while over budget (never the newest). */
  #sweep(): Promise<void> {
    return this.#locked(async () => {
      const now = this.#now();
      for (const e of [...this.#entries.values()]) {
        if (this.#expiresAt(e) * 1000 <= now) {
          await this.#delete(e);
        } else if (e.ext === "png") {
          // A plot's size is known once the sandbox has written it.
          const st = await Deno.stat(this.#path(e.id, "png")).catch(() => undefined);
          e.bytes = st?.size ?? 0;
        }
      }
      let total = 0;
      for (const e of this.#entries.values()) total += e.bytes;
      if (total <= this.#maxBytes) return;
      // Stable sort: among equal times, insertion order; the last one is the newest.
      const oldest = [...this.#entries.values()].sort((a, b) => a.createdAt - b.createdAt);
      oldest.pop();
      for (const e of oldest) {
        if (total <= this.#maxBytes) break;
        total -= e.bytes;
        await this.#delete(e);
      }
    });
  }

  /** Runs index changes one at a time. */
  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }
}

/** Writes all of `data`; returns its length. */
async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<number> {
  let written = 0;
  while (written < data.length) written += await file.write(data.subarray(written));
  return written;
}

async function readMeta(
  path: string,
): Promise<{ rowCount: number; createdAt: number } | undefined> {
  try {
    const m = JSON.parse(await Deno.readTextFile(path));
    if (Number.isInteger(m?.rowCount) && Number.isFinite(m?.createdAt)) {
      return { rowCount: m.rowCount, createdAt: m.createdAt };
    }
  } catch {
    // Missing or damaged sidecar: the result is dropped by the caller.
  }
  return undefined;
}

async function removeFile(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
