import { stringify } from "csv-stringify/sync";
import { csvCell } from "./_csv_cell.ts";

const encoder = new TextEncoder();

/** Rows as CSV bytes; an empty string is written as `""` so it reads back apart from NULL. */
export function csvText(rows: unknown[][]): Uint8Array {
  const text = stringify(rows.map((r) => r.map(csvCell)), {
    cast: { string: (v: string) => (v === "" ? { value: "", quoted_empty: true } : v) },
  });
  return encoder.encode(text);
}

/** Rows per CSV piece while a result is written, so a large result is never one string. */
export const ROWS_PER_PIECE = 1000;

/** The CSV of `columns` and `rows` in pieces of `ROWS_PER_PIECE` rows; `counted` sees each row. */
export function* csvPieces(
  columns: string[],
  rows: Iterable<unknown[]>,
  counted: () => void,
): Generator<Uint8Array> {
  yield csvText([columns]);
  let piece: unknown[][] = [];
  for (const row of rows) {
    piece.push(row);
    counted();
    if (piece.length === ROWS_PER_PIECE) {
      yield csvText(piece);
      piece = [];
    }
  }
  if (piece.length > 0) yield csvText(piece);
}
