import { join, resolve } from "node:path";
import type { Db } from "../db/mod.ts";
import { logger } from "../log/mod.ts";
import type { ResultStore, SavedResult, StoredFile } from "../mcp/deps.ts";
import { csvPieces } from "./_csv_text.ts";
import { CHUNK_BYTES, chunkStream, ChunkWriter, ResultGone } from "./_db_chunks.ts";
import { type Ext, ID_RE, normalizeId } from "./_ids.ts";
import { type LinkSigner, linkSigner, verifyLinkParams } from "./_link_signer.ts";
import type { ResultStoreOptions } from "./create_result_store.ts";

const log = logger("results");

/** Options of `createSharedResultStore`. */
export interface SharedResultStoreOptions extends ResultStoreOptions {
  /** The PostgreSQL database every server instance uses. */
  db: Db;
}

interface Meta {
  kind: Ext;
  row_count: number;
  bytes: number;
  chunks: number;
  created_at: Date;
}

/**
 * Opens the result store every server instance on one PostgreSQL shares: results (CSV) and plots
 * (PNG) live in `result_files` (metadata) and `result_chunks` (the bytes, `CHUNK_BYTES` per row,
 * written as the CSV is produced and read back chunk by chunk), links are signed with
 * `LINK_SECRET` or a secret created once in `result_link_secret`. Results are kept `ttlH` hours
 * and evicted oldest-first past `maxBytes` (never the newest) under an advisory lock, so two
 * instances sweeping at once neither evict twice nor leave the budget exceeded. Removal marks the
 * row `deleting` before its chunks go, so readers see a whole result or none.
 * `DATA_DIR/shared-cache/` holds this instance's local copies for the sandbox.
 */
export async function createSharedResultStore(
  opts: SharedResultStoreOptions,
): Promise<ResultStore> {
  const local = join(resolve(opts.dataDir), "shared-cache");
  await Deno.mkdir(local, { recursive: true, mode: 0o700 });
  const secret = opts.linkSecret
    ? new TextEncoder().encode(opts.linkSecret)
    : await sharedSecret(opts.db);
  const store = new SharedResultStore({ ...opts, local, signer: await linkSigner(secret) });
  await store.load();
  return store;
}

/** The database's link secret, created by whichever instance gets there first. */
async function sharedSecret(db: Db): Promise<Uint8Array> {
  const fresh = crypto.getRandomValues(new Uint8Array(32));
  await db.sql`
    insert into result_link_secret (id, secret) values (true, ${fresh}) on conflict (id) do nothing`;
  const [row] = await db.sql<{ secret: Uint8Array }>`
    select secret from result_link_secret where id`;
  return new Uint8Array(row.secret);
}

class SharedResultStore implements ResultStore {
  #db: Db;
  #local: string;
  #serverUrl: string;
  #ttlMs: number;
  #maxBytes: number;
  #now: () => number;
  #signer: LinkSigner;
  /** Local copies (`shared-cache/<id>.<ext>`) this instance made or found at start. */
  #copies = new Set<string>();
  /** Plots reserved by `newPlot()` and not stored yet. */
  #pending = new Set<string>();
  #copying = new Map<string, Promise<string | undefined>>();
  /** When results this instance saved lately became ready, to sign their links at once. */
  #recent = new Map<string, { ext: Ext; createdAt: number }>();
  #sweeping: Promise<void> | undefined;
  #again = false;

  constructor(o: SharedResultStoreOptions & { local: string; signer: LinkSigner }) {
    this.#db = o.db;
    this.#local = o.local;
    this.#serverUrl = o.serverUrl.replace(/\/+$/, "");
    this.#ttlMs = o.ttlH * 3_600_000;
    this.#maxBytes = o.maxBytes;
    this.#now = o.now ?? Date.now;
    this.#signer = o.signer;
  }

  /** Adopts local copies a previous run left (checked against the database before use). */
  async load(): Promise<void> {
    for await (const f of Deno.readDir(this.#local)) {
      const m = /^(.+)\.(csv|png)$/.exec(f.name);
      if (!f.isFile) continue;
      if (m && ID_RE.test(m[1])) this.#copies.add(m[1]);
      else await removeFile(join(this.#local, f.name)); // an interrupted copy
    }
    await this.#sweep();
  }

  async saveCsv(columns: string[], rows: Iterable<unknown[]>): Promise<SavedResult> {
    const id = crypto.randomUUID();
    let rowCount = 0;
    const writer = new ChunkWriter(this.#db, { id, kind: "csv", now: this.#now });
    try {
      for (const piece of csvPieces(columns, rows, () => rowCount++)) await writer.write(piece);
      this.#remember(id, "csv", await writer.finish(rowCount));
    } catch (error) {
      if (writer.begun) await this.#purge([id]).catch(() => {});
      throw error;
    }
    await this.#sweepQuietly();
    return { queryId: id, rowCount, bytes: writer.bytes };
  }

  csvPath(queryId: string): Promise<string | undefined> {
    return this.filePath(queryId, "csv");
  }

  newPlot(): Promise<{ plotId: string; path: string }> {
    const plotId = crypto.randomUUID();
    this.#pending.add(plotId);
    return Promise.resolve({ plotId, path: join(this.#local, `${plotId}.png`) });
  }

  async storePlot(plotId: string): Promise<void> {
    const id = normalizeId(plotId);
    if (!id || !this.#pending.has(id)) throw new RangeError(`No reserved plot with id "${plotId}"`);
    const path = join(this.#local, `${id}.png`);
    const writer = new ChunkWriter(this.#db, { id, kind: "png", now: this.#now });
    try {
      using file = await Deno.open(path, { read: true });
      const buf = new Uint8Array(CHUNK_BYTES);
      for (let n = await file.read(buf); n !== null; n = await file.read(buf)) {
        await writer.write(buf.subarray(0, n));
      }
      this.#remember(id, "png", await writer.finish(0));
    } catch (error) {
      if (writer.begun) await this.#purge([id]).catch(() => {});
      throw error;
    }
    this.#pending.delete(id);
    this.#copies.add(id);
    await this.#sweepQuietly();
  }

  async fileUrl(id: string, ext: Ext): Promise<string> {
    const key = normalizeId(id);
    const recent = key ? this.#recent.get(key) : undefined;
    const createdAt = recent?.ext === ext
      ? recent.createdAt
      : (key ? await this.#meta(key, ext) : undefined)?.created_at.getTime();
    if (!key || createdAt === undefined || createdAt + this.#ttlMs <= this.#now()) {
      throw new RangeError(`No cached ${ext} file with id "${id}"`);
    }
    const exp = Math.floor((createdAt + this.#ttlMs) / 1000);
    const sig = await this.#signer.sign(`${key}.${ext}`, exp);
    return `${this.#serverUrl}/files/${key}.${ext}?exp=${exp}&sig=${sig}`;
  }

  async remove(queryId?: string): Promise<string[]> {
    let claimed: { id: string; kind: Ext }[];
    // Plots reserved here and not stored yet count as removed plots too.
    const reserved: string[] = [];
    if (queryId === undefined) {
      claimed = await this.#db.sql<{ id: string; kind: Ext }>`
        update result_files set state = 'deleting', state_at = now()
        where state = 'ready' returning id::text, kind`;
      reserved.push(...this.#pending);
    } else {
      const id = normalizeId(queryId);
      if (!id) return [];
      claimed = await this.#db.sql<{ id: string; kind: Ext }>`
        update result_files set state = 'deleting', state_at = now()
        where id = ${id} and state = 'ready' returning id::text, kind`;
      if (this.#pending.has(id)) reserved.push(id);
    }
    for (const id of reserved) {
      this.#pending.delete(id);
      await this.#dropCopy(id);
    }
    await this.#purge(claimed.map((r) => r.id));
    return [
      ...claimed.filter((r) => r.kind === "csv").map((r) => r.id),
      ...claimed.filter((r) => r.kind === "png").map((r) => r.id),
      ...reserved,
    ];
  }

  async list(): Promise<{ queryId: string; rowCount: number; bytes: number; createdAt: Date }[]> {
    await this.#sweepQuietly();
    const rows = await this.#db.sql<{
      id: string;
      row_count: number;
      bytes: number;
      created_at: Date;
    }>`
      select id::text, row_count, bytes, created_at from result_files
      where kind = 'csv' and state = 'ready' and created_at > ${this.#cutoff()}
      order by created_at desc, id desc`;
    return rows.map((r) => ({
      queryId: r.id,
      rowCount: r.row_count,
      bytes: r.bytes,
      createdAt: r.created_at,
    }));
  }

  async filePath(id: string, ext: Ext): Promise<string | undefined> {
    const key = normalizeId(id);
    if (!key) return undefined;
    const meta = await this.#meta(key, ext);
    if (!meta) {
      if (this.#copies.has(key)) await this.#dropCopy(key);
      return undefined;
    }
    let copying = this.#copying.get(key);
    if (!copying) {
      copying = this.#copy(key, ext, meta).finally(() => this.#copying.delete(key));
      this.#copying.set(key, copying);
    }
    return await copying;
  }

  async openFile(id: string, ext: Ext): Promise<StoredFile | undefined> {
    const key = normalizeId(id);
    if (!key) return undefined;
    const [row] = await this.#db.sql<{ bytes: number; chunks: number; data: Uint8Array | null }>`
      select f.bytes, f.chunks, c.data from result_files f
      left join result_chunks c on c.result_id = f.id and c.seq = 0
      where f.id = ${key} and f.kind = ${ext} and f.state = 'ready'
        and f.created_at > ${this.#cutoff()}`;
    if (!row) return undefined;
    const first = row.data ? new Uint8Array(row.data) : undefined;
    return { size: row.bytes, body: chunkStream(this.#db, { id: key, chunks: row.chunks, first }) };
  }

  verifyLink(id: string, ext: Ext, params: URLSearchParams): Promise<boolean> {
    return verifyLinkParams(this.#signer, { id, ext, params, nowMs: this.#now() });
  }

  /** A local copy of a ready result, written from its chunks unless one exists already. */
  async #copy(id: string, ext: Ext, meta: Meta): Promise<string | undefined> {
    const path = join(this.#local, `${id}.${ext}`);
    if (this.#copies.has(id)) {
      const st = await Deno.stat(path).catch(() => undefined);
      if (st?.isFile && st.size === meta.bytes) return path;
    }
    const tmp = join(this.#local, `.${id}.${crypto.randomUUID()}.tmp`);
    try {
      const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
      await chunkStream(this.#db, { id, chunks: meta.chunks }).pipeTo(file.writable);
      await Deno.rename(tmp, path);
    } catch (error) {
      await removeFile(tmp);
      if (error instanceof ResultGone) return undefined;
      throw error;
    }
    this.#copies.add(id);
    return path;
  }

  async #dropCopy(id: string): Promise<void> {
    this.#copies.delete(id);
    await removeFile(join(this.#local, `${id}.csv`));
    await removeFile(join(this.#local, `${id}.png`));
  }

  async #meta(id: string, ext: Ext): Promise<Meta | undefined> {
    const [row] = await this.#db.sql<Meta>`
      select kind, row_count, bytes, chunks, created_at from result_files
      where id = ${id} and kind = ${ext} and state = 'ready' and created_at > ${this.#cutoff()}`;
    return row;
  }

  /** Deletes the chunks, then the rows, of results no longer `ready`. Idempotent. */
  async #purge(ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    const list = `{${ids.join(",")}}`;
    await this.#db.sql`delete from result_chunks where result_id = any(${list}::uuid[])`;
    await this.#db.sql`
      delete from result_files where id = any(${list}::uuid[]) and state <> 'ready'`;
    for (const id of ids) {
      this.#recent.delete(id);
      if (this.#copies.has(id)) await this.#dropCopy(id);
    }
  }

  #cutoff(): Date {
    return new Date(this.#now() - this.#ttlMs);
  }

  #remember(id: string, ext: Ext, createdAt: number): void {
    this.#recent.set(id, { ext, createdAt });
    // The oldest entry goes first (a Map iterates in insertion order).
    if (this.#recent.size > 256) this.#recent.delete(this.#recent.keys().next().value!);
  }

  /** A failed sweep is retried by the next one; the result that triggered it is saved. */
  async #sweepQuietly(): Promise<void> {
    try {
      await this.#sweep();
    } catch (error) {
      log.warn("evicting old query results failed; retrying at the next save", { error });
    }
  }

  /** Runs one sweep at a time per instance; a request during a sweep gets one more after it. */
  #sweep(): Promise<void> {
    if (this.#sweeping) {
      this.#again = true;
      return this.#sweeping;
    }
    this.#sweeping = (async () => {
      do {
        this.#again = false;
        await this.#sweepOnce();
      } while (this.#again);
    })().finally(() => this.#sweeping = undefined);
    return this.#sweeping;
  }

  /**
   * Claims, in one call of `result_sweep` (migrations/0006_shared_results.sql, under an advisory
   * lock), expired results, every result past the byte budget counted newest first except the
   * newest, and writes and removals a crashed server left unfinished. Then deletes what it
   * claimed and drops local copies of results that are gone.
   */
  async #sweepOnce(): Promise<void> {
    const cutoff = this.#cutoff();
    const claimed = (await this.#db.sql<{ id: string }>`
      select id::text from result_sweep(${cutoff}, ${this.#maxBytes}) as s(id)`).map((r) => r.id);
    await this.#purge(claimed);
    const copies = [...this.#copies].filter((id) => !this.#pending.has(id));
    if (copies.length === 0) return;
    const live = new Set(
      (await this.#db.sql<{ id: string }>`
        select id::text from result_files
        where id = any(${`{${copies.join(",")}}`}::uuid[]) and state = 'ready'
          and created_at > ${cutoff}`).map((r) => r.id),
    );
    for (const id of copies) if (!live.has(id)) await this.#dropCopy(id);
  }
}

async function removeFile(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
}
