const IDENT = Symbol("sql identifier");

/** A validated SQL identifier that `sql` templates insert quoted instead of as a parameter. */
export interface Ident {
  readonly [IDENT]: string;
}

const IDENT_RE = /^[a-z_][a-z0-9_]{0,62}$/;

/** True when `name` is acceptable as a table or column name we create ourselves. */
export function isValidIdent(name: string): boolean {
  return IDENT_RE.test(name);
}

/**
 * The one way dynamic identifiers enter SQL: `sql\`select ${ident("co2")} from …\``.
 * Only lower-case letters, digits and underscores (≤ 63, not starting with a digit) pass.
 */
export function ident(name: string): Ident {
  if (!IDENT_RE.test(name)) {
    throw new RangeError(
      `Cannot use "${name}" as an SQL identifier: expected [a-z_][a-z0-9_]{0,62}`,
    );
  }
  return { [IDENT]: `"${name}"` };
}

/** True for values made by `ident()`. */
export function isIdent(v: unknown): v is Ident {
  return typeof v === "object" && v !== null && IDENT in v;
}

/**
 * Turns a tagged template into `$n` text and parameters; `ident()` values are inlined quoted,
 * arrays of `ident()` values are inlined comma-separated.
 */
export function buildQuery(
  strings: TemplateStringsArray,
  values: unknown[],
): { text: string; params: unknown[] } {
  let text = strings[0];
  const params: unknown[] = [];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (isIdent(v)) text += v[IDENT];
    else if (Array.isArray(v) && v.length > 0 && v.every(isIdent)) {
      text += v.map((x) => x[IDENT]).join(", ");
    } else {
      params.push(v);
      text += `$${params.length}`;
    }
    text += strings[i + 1];
  }
  return { text, params };
}
