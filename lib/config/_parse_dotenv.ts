// Parses the text of a `.env` file: `NAME=value` lines, `#` comments, an optional `export `,
// single quotes (literal), double quotes (with \n, \t, \" and \\ escapes, may span lines), and
// unquoted values ending at ` #`. Throws a plain Error naming the line of anything else.

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The variables a `.env` text defines, in order; a later definition replaces an earlier one. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const eq = line.indexOf("=");
    const name = (eq < 0 ? line : line.slice(0, eq)).replace(/^export\s+/, "").trim();
    if (eq < 0 || !NAME.test(name)) {
      throw new Error(`line ${lineNo}: expected NAME=value, got "${clip(line)}"`);
    }
    let rest = line.slice(eq + 1).trimStart();
    let value: string;
    if (rest.startsWith("'") || rest.startsWith('"')) {
      const quote = rest[0];
      rest = rest.slice(1);
      // A double-quoted value may continue over the following lines.
      let end = closing(rest, quote);
      while (end < 0 && quote === '"' && i + 1 < lines.length) {
        rest += "\n" + lines[++i];
        end = closing(rest, quote);
      }
      if (end < 0) throw new Error(`line ${lineNo}: ${name} has no closing ${quote}`);
      const after = rest.slice(end + 1).trim();
      if (after !== "" && !after.startsWith("#")) {
        throw new Error(`line ${lineNo}: unexpected text after the quoted value of ${name}`);
      }
      value = rest.slice(0, end);
      if (quote === '"') value = unescape(value);
    } else {
      const hash = rest.search(/\s#/);
      value = (hash < 0 ? rest : rest.slice(0, hash)).trim();
    }
    out[name] = value;
  }
  return out;
}

function closing(text: string, quote: string): number {
  for (let i = 0; i < text.length; i++) {
    if (quote === '"' && text[i] === "\\") i++;
    else if (text[i] === quote) return i;
  }
  return -1;
}

function unescape(value: string): string {
  return value.replace(
    /\\([nrt"\\$])/g,
    (_, c: string) => c === "n" ? "\n" : c === "r" ? "\r" : c === "t" ? "\t" : c,
  );
}

function clip(line: string): string {
  return line.length > 40 ? line.slice(0, 40) + "…" : line;
}
