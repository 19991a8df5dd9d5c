import type { Queryable } from "../db/mod.ts";

/** Bytes per row of `result_chunks`: what a writer or reader holds in memory at most. */
export const CHUNK_BYTES = 256 * 1024;

/** A result was removed (evicted, expired or cleared) while it was being read or written. */
export class ResultGone extends Error {
  constructor(id: string) {
    super(`Result "${id}" was removed while it was being read or written`);
    this.name = "ResultGone";
  }
}

/**
 * Writes one result into `result_files` and `result_chunks`, `CHUNK_BYTES` at a time, as its bytes
 * are produced: at most one chunk is held in memory. The row is registered as `writing` before
 * the first chunk goes out (invisible to readers) and made `ready` by `finish`; a result of a
 * single chunk is written by one statement.
 */
export class ChunkWriter {
  #db: Queryable;
  #id: string;
  #kind: "csv" | "png";
  #now: () => number;
  #buf = new Uint8Array(CHUNK_BYTES);
  #fill = 0;
  #begun = false;
  /** Chunks written so far. */
  chunks = 0;
  /** Bytes written so far (including the buffered ones). */
  bytes = 0;

  constructor(db: Queryable, file: { id: string; kind: "csv" | "png"; now: () => number }) {
    this.#db = db;
    this.#id = file.id;
    this.#kind = file.kind;
    this.#now = file.now;
  }

  /** True once rows may exist in the database (to remove after a failure). */
  get begun(): boolean {
    return this.#begun;
  }

  /** Buffers `data`, writing every full chunk. */
  async write(data: Uint8Array): Promise<void> {
    let at = 0;
    while (at < data.length) {
      const n = Math.min(data.length - at, CHUNK_BYTES - this.#fill);
      this.#buf.set(data.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      this.bytes += n;
      if (this.#fill === CHUNK_BYTES) await this.#flush();
    }
  }

  /**
   * Writes what is buffered and makes the result visible; its age counts from now (returned, in
   * milliseconds).
   */
  async finish(rowCount: number): Promise<number> {
    const createdAt = new Date(this.#now());
    if (!this.#begun) {
      this.#begun = true;
      const data = this.#buf.slice(0, this.#fill);
      const chunks = data.length > 0 ? 1 : 0;
      await this.#db.sql`
        with f as (
          insert into result_files (id, kind, state, row_count, bytes, chunks, created_at)
          values (${this.#id}, ${this.#kind}, 'ready', ${rowCount}, ${this.bytes}, ${chunks},
                  ${createdAt}))
        insert into result_chunks (result_id, seq, data)
        select ${this.#id}::uuid, 0, ${data}::bytea where ${chunks}::int = 1`;
      return createdAt.getTime();
    }
    if (this.#fill > 0) await this.#flush();
    const done = await this.#db.sql`
      update result_files
      set state = 'ready', state_at = now(), row_count = ${rowCount}, bytes = ${this.bytes},
          chunks = ${this.chunks}, created_at = ${createdAt}
      where id = ${this.#id} and state = 'writing' returning id`;
    if (done.length === 0) throw new ResultGone(this.#id);
    return createdAt.getTime();
  }

  async #flush(): Promise<void> {
    if (!this.#begun) {
      this.#begun = true;
      await this.#db.sql`
        insert into result_files (id, kind, created_at)
        values (${this.#id}, ${this.#kind}, ${new Date(this.#now())})`;
    }
    const data = this.#buf.slice(0, this.#fill);
    await this.#db.sql`
      insert into result_chunks (result_id, seq, data) values (${this.#id}, ${this.chunks}, ${data})`;
    this.chunks++;
    this.#fill = 0;
  }
}

/**
 * The chunks of a ready result, one query per chunk (no connection is held between them). Each
 * query also checks that the result is still `ready`: a result being removed goes to `deleting`
 * before any chunk is deleted, so a reader gets every byte or a `ResultGone` error, never a
 * silently shortened file.
 */
export function chunkStream(
  db: Queryable,
  file: { id: string; chunks: number; first?: Uint8Array },
): ReadableStream<Uint8Array> {
  const { id, chunks } = file;
  let seq = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (seq === 0 && file.first && chunks > 0) {
        // Read with the metadata, in the same statement.
        seq++;
        controller.enqueue(file.first);
        return;
      }
      if (seq >= chunks) {
        controller.close();
        return;
      }
      const rows = await db.sql<{ data: Uint8Array }>`
        select c.data from result_chunks c
        where c.result_id = ${id} and c.seq = ${seq}
          and exists (select 1 from result_files f where f.id = ${id} and f.state = 'ready')`;
      if (rows.length === 0) {
        controller.error(new ResultGone(id));
        return;
      }
      seq++;
      controller.enqueue(new Uint8Array(rows[0].data));
    },
  }, { highWaterMark: 0 });
}
