// Runs PGlite inside a Web Worker so the owning process can kill a runaway query (PGlite executes
// synchronously in WASM and ignores statement_timeout) by terminating the worker.
import { PGlite, types } from "@electric-sql/pglite";
import { fromBlob } from "./_pglite.ts";

interface Request {
  id: number;
  op: "open" | "query" | "exec" | "copy" | "close";
  text?: string;
  /** COPY's text-format data (`copy`). */
  data?: string;
  params?: unknown[];
  dataDir?: string;
}

const PARSERS = {
  [types.INT8]: (x: string) => {
    const n = Number(x);
    return Number.isSafeInteger(n) ? n : x;
  },
  [types.NUMERIC]: (x: string) => x,
};

let pg: PGlite | undefined;
const scope = self as unknown as {
  onmessage: (e: MessageEvent<Request>) => void;
  postMessage: (m: unknown) => void;
};

scope.onmessage = async (e) => {
  const { id, op } = e.data;
  try {
    let result: unknown = null;
    if (op === "open") {
      pg = await PGlite.create(e.data.dataDir!, { parsers: PARSERS });
    } else if (op === "query") {
      const r = await pg!.query(e.data.text!, e.data.params ?? []);
      result = {
        rows: r.rows,
        fields: r.fields.map((f) => ({ name: f.name, typeId: f.dataTypeID })),
      };
    } else if (op === "exec") {
      await pg!.exec(e.data.text!);
    } else if (op === "copy") {
      await pg!.query(fromBlob(e.data.text!), [], { blob: new Blob([e.data.data!]) });
    } else if (op === "close") {
      await pg?.close();
      pg = undefined;
    }
    scope.postMessage({ id, ok: true, result });
  } catch (err) {
    const x = err as Record<string, unknown>;
    scope.postMessage({
      id,
      ok: false,
      error: {
        message: String(x?.message ?? err),
        code: x?.code,
        detail: x?.detail,
        hint: x?.hint,
        position: x?.position,
      },
    });
  }
};
