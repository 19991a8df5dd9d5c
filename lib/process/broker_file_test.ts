import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { join } from "node:path";
import { readBrokerFile, writeBrokerFile } from "./broker_file.ts";

Deno.test("writeBrokerFile() leaves the address for readBrokerFile() and removes it on stop", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-file-" });
  try {
    assertEquals(readBrokerFile(dir), undefined);
    const remove = await writeBrokerFile(dir, "mqtt://127.0.0.1:1884");
    assertEquals(readBrokerFile(dir), {
      url: "mqtt://127.0.0.1:1884",
      file: join(dir, "broker.json"),
    });
    await remove();
    assertEquals(readBrokerFile(dir), undefined);
    await remove(); // twice is harmless
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("readBrokerFile() ignores a file that is not what serve writes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "broker-file-" });
  try {
    for (
      const body of [
        "not json",
        '{"url": 5}',
        '{"url": "http://127.0.0.1:80"}',
        '{"url": "mqtt://user:pw@127.0.0.1:1883"}',
        JSON.stringify({ url: "mqtt://" + "a".repeat(5000) }),
      ]
    ) {
      await Deno.writeTextFile(join(dir, "broker.json"), body);
      assertEquals(readBrokerFile(dir), undefined, body.slice(0, 40));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
