import { buildQuery } from "./ident.ts";
import { QueryTimeout } from "./query_timeout.ts";
import type { Db, Queryable, QueryResult, Row, TransactionOptions } from "./types.ts";

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/** An error raised by PostgreSQL inside the worker, with its SQLSTATE `code`. */
class PgliteError extends Error {
  code?: string;
  detail?: string;
  hint?: string;
  position?: string;
  constructor(
    e: { message: string; code?: string; detail?: string; hint?: string; position?: string },
  ) {
    super(e.message);
    this.name = "PgliteError";
    Object.assign(this, { code: e.code, detail: e.detail, hint: e.hint, position: e.position });
  }
}

class WorkerLink {
  #worker: Worker;
  #pending = new Map<number, Pending>();
  #next = 1;
  #dead: Error | undefined;

  constructor() {
    this.#worker = new Worker(new URL("./_pglite_worker.ts", import.meta.url), { type: "module" });
    this.#worker.onmessage = (e: MessageEvent) => {
      const { id, ok, result, error } = e.data;
      const p = this.#pending.get(id);
      if (!p) return;
      this.#pending.delete(id);
      if (ok) p.resolve(result);
      else p.reject(new PgliteError(error));
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.kill(new Error(`Embedded database worker failed: ${e.message}`));
    };
  }

  call<T>(msg: Record<string, unknown>): Promise<T> {
    if (this.#dead) return Promise.reject(this.#dead);
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ ...msg, id });
    });
  }

  kill(reason: Error) {
    if (this.#dead) return;
    this.#dead = reason;
    this.#worker.terminate();
    for (const p of this.#pending.values()) p.reject(reason);
    this.#pending.clear();
  }
}

/**
 * PGlite in a Worker on a data directory. All access is serialised through one lock (PGlite is
 * one connection). A transaction given `timeoutMs` that runs over is stopped by terminating the
 * worker and reopening the directory, which PostgreSQL recovers like a crash: committed data
 * stays, the cancelled transaction is gone, the process keeps running.
 */
export async function openPgliteRemote(dataDir: string): Promise<Db> {
  await Deno.mkdir(dataDir, { recursive: true });
  let link = new WorkerLink();
  let ready: Promise<unknown> = link.call({ op: "open", dataDir });
  await ready;
  let tail: Promise<unknown> = Promise.resolve();
  let closed = false;

  const withLock = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(() => ready).then(fn);
    tail = run.catch(() => {});
    return run;
  };

  const viaLink = (l: () => WorkerLink): Queryable => {
    const query = <T = Row>(text: string, params: unknown[] = []) =>
      l().call<QueryResult<T>>({ op: "query", text, params });
    return {
      query,
      sql: async <T = Row>(strings: TemplateStringsArray, ...values: unknown[]) => {
        const { text, params } = buildQuery(strings, values);
        return (await query<T>(text, params)).rows;
      },
      exec: async (script: string) => {
        await l().call({ op: "exec", text: script });
      },
      copyIn: async (statement: string, data: string) => {
        await l().call({ op: "copy", text: statement, data });
      },
    };
  };
  const direct = viaLink(() => link);

  const restart = async () => {
    link = new WorkerLink();
    ready = link.call({ op: "open", dataDir });
    await ready;
  };

  return {
    kind: "pglite",
    query: (text, params) => withLock(() => direct.query(text, params)),
    sql: (strings, ...values) => withLock(() => direct.sql(strings, ...values)),
    exec: (script) => withLock(() => direct.exec(script)),
    copyIn: (statement, data) => withLock(() => direct.copyIn!(statement, data)),
    transaction: <T>(fn: (tx: Queryable) => Promise<T>, opts: TransactionOptions = {}) =>
      withLock(async () => {
        const mine = link;
        await direct.exec("begin");
        let timer: ReturnType<typeof setTimeout> | undefined;
        let timedOut = false;
        const guard = new Promise<never>((_, reject) => {
          if (!opts.timeoutMs) return;
          timer = setTimeout(() => {
            timedOut = true;
            const err = new QueryTimeout(opts.timeoutMs!);
            mine.kill(err);
            reject(err);
          }, opts.timeoutMs);
        });
        try {
          const out = await Promise.race([fn(viaLink(() => mine)), guard]);
          await direct.exec("commit");
          return out;
        } catch (err) {
          if (timedOut) {
            await restart();
            throw err instanceof QueryTimeout ? err : new QueryTimeout(opts.timeoutMs!);
          }
          await direct.exec("rollback").catch(() => {});
          throw err;
        } finally {
          clearTimeout(timer);
        }
      }),
    close: () =>
      withLock(async () => {
        if (closed) return;
        closed = true;
        await link.call({ op: "close" }).catch(() => {});
        link.kill(new Error("Database is closed"));
      }),
  };
}
