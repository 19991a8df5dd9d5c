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
 * Appends bytes to a result's `result_chunks` rows, `CHUNK_BYTES` at a time, as they are
 * produced: at most one chunk is held in memory.
 */
export class ChunkWriter {
  #db: Queryable;
  #id: string;
  #buf = new Uint8Array(CHUNK_BYTES);
  #fill = 0;
  /** Chunks written so far. */
  chunks = 0;
  /** Bytes written so far (including the buffered ones). */
  bytes = 0;

  constructor(db: Queryable, id: string) {
    this.#db = db;
    this.#id = id;
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

  /** Writes what is buffered. */
  async close(): Promise<void> {
    if (this.#fill > 0) await this.#flush();
  }

  async #flush(): Promise<void> {
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
export function chunkStream(db: Queryable, id: string, chunks: number): ReadableStream<Uint8Array> {
  let seq = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
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
