import { equal } from "node:assert/strict";
import { formatAge } from "./format_age.ts";

Deno.test("formatAge() says how long ago in the largest fitting unit", () => {
  equal(formatAge(0), "0 s ago");
  equal(formatAge(40), "40 s ago");
  equal(formatAge(600), "10 min ago");
  equal(formatAge(3 * 3600), "3 h ago");
  equal(formatAge(3 * 86400), "3 d ago");
  equal(formatAge(-5), "in 5 s");
});
