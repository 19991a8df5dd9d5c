/**
 * `deno task bench`: runs every benchmark part and prints its figures and ratios. Each part is a
 * module in this folder exporting `run(args: string[]): Promise<void>`; pass part names to run
 * only some (`deno task bench ingest mcp`).
 *
 * @module
 */
const PARTS = [
  "ingest",
  "mcp",
  "readings",
  "rollups",
  "sandbox",
  "mixed",
  "scale",
  "dashboard",
  "memory",
] as const;

async function main() {
  const wanted = Deno.args.filter((a) => !a.startsWith("-"));
  for (const part of PARTS) {
    if (wanted.length > 0 && !wanted.includes(part)) continue;
    const url = new URL(`./${part}.ts`, import.meta.url);
    try {
      await Deno.stat(url);
    } catch {
      continue;
    }
    console.log(`\n=== ${part} ===`);
    const mod = await import(url.href) as { run(args: string[]): Promise<void> };
    await mod.run(Deno.args);
  }
}

if (import.meta.main) await main();
