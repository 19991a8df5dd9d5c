import { equal, ok } from "node:assert/strict";
import { allowedHosts, bearerMatches, checkHostAndOrigin } from "./_request_guard.ts";

function req(headers: Record<string, string>): Request {
  return new Request("http://127.0.0.1:8000/mcp", { method: "POST", headers });
}

Deno.test("allowedHosts() accepts loopback names, the configured host and SERVER_URL's host", () => {
  const a = allowedHosts({
    host: "192.168.1.20",
    ports: [8000, 8001],
    serverUrl: "https://sensors.example.com",
  });
  for (const h of ["127.0.0.1:8000", "localhost:8001", "[::1]:8000", "192.168.1.20:8001"]) {
    ok(a.has(h), h);
  }
  ok(a.has("sensors.example.com"), "a proxy's Host without the default port");
  ok(!a.has("192.168.1.20:9000") && !a.has("evil.example:8000"));
});

Deno.test("allowedHosts() on a wildcard HOST accepts the machine's own names only", () => {
  const a = allowedHosts({
    host: "0.0.0.0",
    ports: [8000],
    serverUrl: "http://127.0.0.1:8000",
    machineNames: ["pi", "fe80::1", "10.0.0.7"],
  });
  ok(a.has("pi:8000") && a.has("[fe80::1]:8000") && a.has("10.0.0.7:8000"));
  ok(!a.has("0.0.0.0:8000"), "the wildcard itself is not a name clients use");
});

Deno.test("checkHostAndOrigin() refuses foreign hosts and origins but not a missing Origin", () => {
  const a = allowedHosts({ host: "127.0.0.1", ports: [8000], serverUrl: "http://127.0.0.1:8000" });
  const o = { checkOrigin: true };
  equal(checkHostAndOrigin(req({ host: "127.0.0.1:8000" }), a, o), undefined);
  equal(checkHostAndOrigin(req({ host: "LOCALHOST:8000" }), a, o), undefined);
  ok(checkHostAndOrigin(req({ host: "attacker.example:8000" }), a, o));
  ok(checkHostAndOrigin(req({ host: "127.0.0.1:8000", origin: "http://attacker.example" }), a, o));
  ok(checkHostAndOrigin(req({ host: "127.0.0.1:8000", origin: "null" }), a, o));
  ok(checkHostAndOrigin(req({ host: "127.0.0.1:8000", origin: "file://" }), a, o));
  equal(
    checkHostAndOrigin(req({ host: "127.0.0.1:8000", origin: "http://localhost:8000" }), a, o),
    undefined,
  );
});

Deno.test("bearerMatches() accepts exactly the token", async () => {
  const token = "s3cret-token-of-some-length";
  ok(await bearerMatches(`Bearer ${token}`, token));
  ok(await bearerMatches(`bearer ${token}`, token), "the scheme is case-insensitive");
  for (const h of [null, "", token, `Bearer ${token}x`, `Bearer ${token.slice(1)}`, "Bearer "]) {
    equal(await bearerMatches(h, token), false, String(h));
  }
});
