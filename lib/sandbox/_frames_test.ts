import { deepStrictEqual, equal } from "node:assert/strict";
import { MAX_PNG_FRAME, parseFrames } from "./_frames.ts";

const enc = new TextEncoder();

Deno.test("parseFrames reads a png and a result frame", () => {
  const f = parseFrames(enc.encode("png 3\n\x01\x02\x03result 2\n{}"));
  deepStrictEqual([...f.png!], [1, 2, 3]);
  equal(new TextDecoder().decode(f.result), "{}");
  equal(f.malformed, undefined);
});

Deno.test("parseFrames refuses unknown, repeated, oversized and truncated frames", () => {
  equal(parseFrames(enc.encode("file 3\nabc")).malformed, "frame header");
  equal(parseFrames(enc.encode("result 2\n{}result 2\n{}")).malformed, "result frame");
  equal(parseFrames(enc.encode(`png ${MAX_PNG_FRAME + 1}\n`)).malformed, "png frame");
  equal(parseFrames(enc.encode("result 10\n{}")).malformed, "truncated frame");
  equal(parseFrames(enc.encode("x".repeat(100))).malformed, "frame header");
});
