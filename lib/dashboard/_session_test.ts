import { equal, notEqual, ok } from "node:assert/strict";
import { readCookie, SESSION_TTL_S, SessionSigner } from "./_session.ts";

const TOKEN = "a-token-of-sixteen-or-more";

Deno.test("a session cookie verifies, is not the token, and expires", async () => {
  const s = new SessionSigner(TOKEN);
  const now = Date.UTC(2026, 0, 1);
  const value = await s.issue(now);
  ok(!value.includes(TOKEN));
  ok(await s.verify(value, now));
  ok(await s.verify(value, now + (SESSION_TTL_S - 1) * 1000));
  ok(!await s.verify(value, now + SESSION_TTL_S * 1000), "expired");
  notEqual(await s.issue(now), value, "every login gets its own session");
});

Deno.test("forged, altered or foreign session cookies are refused", async () => {
  const s = new SessionSigner(TOKEN);
  const now = Date.now();
  const value = await s.issue(now);
  const [exp, id, sig] = value.split(".");
  for (
    const bad of [
      undefined,
      "",
      TOKEN,
      `${Number(exp) + 1000}.${id}.${sig}`, // longer life, same signature
      `${exp}.${id.replace(/^./, id[0] === "A" ? "B" : "A")}.${sig}`,
      `${exp}.${id}.${sig.replace(/^./, sig[0] === "A" ? "B" : "A")}`,
      `${exp}.${id}`,
      value + "x",
      "x".repeat(500),
      await new SessionSigner(TOKEN + "-other").issue(now), // signed with another token
    ]
  ) {
    equal(await s.verify(bad, now), false, String(bad));
  }
});

Deno.test("the token comparison accepts only the token", async () => {
  const s = new SessionSigner(TOKEN);
  ok(await s.tokenMatches(TOKEN));
  for (const bad of ["", TOKEN.slice(0, -1), TOKEN + " ", TOKEN.toUpperCase()]) {
    equal(await s.tokenMatches(bad), false, bad);
  }
});

Deno.test("readCookie finds one cookie among several", () => {
  equal(readCookie("a=1; ambient_session=xyz; b=2", "ambient_session"), "xyz");
  equal(readCookie("ambient_sessionx=1", "ambient_session"), undefined);
  equal(readCookie(null, "ambient_session"), undefined);
});
