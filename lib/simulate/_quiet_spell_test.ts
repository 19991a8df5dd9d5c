import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { inQuietSpell } from "./_quiet_spell.ts";

Deno.test("inQuietSpell() is silent for `forMs` after every `afterMs` of normal operation", () => {
  const spell = { afterMs: 120_000, forMs: 420_000 };
  const at = (s: number) => inQuietSpell(s * 1000, spell);
  assertEquals([at(0), at(119), at(120), at(539), at(540), at(659)], [
    false,
    false,
    true,
    true,
    false,
    false,
  ]);
  assertEquals([at(660), at(1079), at(1080)], [true, true, false]);
});
