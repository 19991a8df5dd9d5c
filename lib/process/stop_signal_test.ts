import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { stopSignal } from "./stop_signal.ts";

Deno.test({
  name: "stopSignal() counts signals close together as one and a later one as deliberate",
  ignore: Deno.build.os === "windows",
  async fn() {
    // Signal listeners do not keep the event loop alive; this timer does, until the end.
    const alive = setInterval(() => {}, 1000);
    const forced: string[] = [];
    const stopped = stopSignal({ graceMs: 300, onForce: (s) => forced.push(s) });
    // This process signals itself twice, as systemd's stop of the unit's processes plus
    // `deno task`'s forward would (SIGTERM: the test runner itself answers SIGINT).
    Deno.kill(Deno.pid, "SIGTERM");
    Deno.kill(Deno.pid, "SIGTERM");
    assertEquals(await stopped, "SIGTERM");
    await new Promise((r) => setTimeout(r, 50));
    assertEquals(forced, []);
    await new Promise((r) => setTimeout(r, 400));
    Deno.kill(Deno.pid, "SIGTERM");
    await new Promise((r) => setTimeout(r, 100));
    assertEquals(forced, ["SIGTERM"]);
    clearInterval(alive);
  },
  sanitizeOps: false,
  sanitizeResources: false,
});
