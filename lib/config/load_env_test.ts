import { deepStrictEqual as assertEquals, match, ok, throws } from "node:assert/strict";
import { join } from "node:path";
import {
  ConfigError,
  configErrorText,
  loadCollectorConfig,
  loadEnv,
  loadServeConfig,
} from "./mod.ts";
import { parseDotenv } from "./_parse_dotenv.ts";

async function withFolder(fn: (dir: string) => Promise<void> | void): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "load-env-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseDotenv() reads comments, export, quotes, escapes and inline comments", () => {
  assertEquals(
    parseDotenv([
      "\uFEFF# a comment",
      "",
      "DB_HOST=db.local",
      "export DB_USER = sensor ",
      "DB_PASSWORD='p@ss #word'",
      'MQTT_BROKER="broker\\tlocal" # where devices publish',
      "PORT=8000 # the MCP port",
      'NOTE="two',
      'lines"',
      "EMPTY=",
      "HASH=a#b",
    ].join("\n")),
    {
      DB_HOST: "db.local",
      DB_USER: "sensor",
      DB_PASSWORD: "p@ss #word",
      MQTT_BROKER: "broker\tlocal",
      PORT: "8000",
      NOTE: "two\nlines",
      EMPTY: "",
      HASH: "a#b",
    },
  );
});

Deno.test("parseDotenv() names the line of anything it cannot read", () => {
  throws(() => parseDotenv("A=1\nnot a setting\n"), /line 2: expected NAME=value/);
  throws(() => parseDotenv("1A=x"), /line 1/);
  throws(() => parseDotenv("A='open"), /line 1: A has no closing '/);
  throws(() => parseDotenv('A="x" trailing'), /line 1: unexpected text/);
});

Deno.test("loadEnv() reads ./.env beneath the process environment, which wins", async () => {
  await withFolder(async (dir) => {
    await Deno.writeTextFile(
      join(dir, ".env"),
      "DB_HOST=db.local\nDB_USER=sensor\nDB_PASSWORD=secret\nMQTT_BROKER=pi.local\n" +
        "MQTT_PORT=1884\nPORT=8100\n",
    );
    const loaded = loadEnv({ PORT: "9000", PATH: "/bin" }, { cwd: dir });
    assertEquals(loaded.file, join(dir, ".env"));
    assertEquals(loaded.env.PORT, "9000");
    assertEquals(loaded.env.PATH, "/bin");
    ok(loaded.fromFile.has("DB_HOST") && !loaded.fromFile.has("PORT"));
    // The seed's names work unchanged through the aliases.
    const c = loadCollectorConfig(loaded.env);
    assertEquals(c.databaseUrl, "postgres://sensor:secret@db.local:5432/postgres");
    assertEquals(c.mqtt.url, "mqtt://pi.local:1884");
    assertEquals(loadServeConfig(loaded.env).port, 9000);
  });
});

Deno.test("loadEnv() takes ENV_FILE instead of ./.env, and refuses one that is missing", async () => {
  await withFolder(async (dir) => {
    await Deno.writeTextFile(join(dir, ".env"), "PORT=1\n");
    await Deno.writeTextFile(join(dir, "other.env"), "PORT=2\n");
    assertEquals(loadEnv({ ENV_FILE: "other.env" }, { cwd: dir }).env.PORT, "2");
    throws(() => loadEnv({ ENV_FILE: "missing.env" }, { cwd: dir }), (e: unknown) => {
      ok(e instanceof ConfigError && e.variable === "ENV_FILE");
      match(e.message, /missing\.env/);
      return true;
    });
  });
});

Deno.test("loadEnv() without a file says where it looked; a bad line names the file", async () => {
  await withFolder(async (dir) => {
    const none = loadEnv({ A: "1" }, { cwd: dir });
    assertEquals([none.file, none.env], [undefined, { A: "1" }]);
    match(none.source, new RegExp(`no \\.env in ${dir}`));
    await Deno.writeTextFile(join(dir, ".env"), "PORT=8000\nthis is not a setting\n");
    throws(() => loadEnv({}, { cwd: dir }), /\.env.*line 2/);
  });
});

Deno.test("configErrorText() names the .env when the bad value came from it", async () => {
  await withFolder(async (dir) => {
    await Deno.writeTextFile(join(dir, ".env"), "PORT=eighty\n");
    const loaded = loadEnv({}, { cwd: dir });
    try {
      loadServeConfig(loaded.env);
      throw new Error("accepted a bad PORT");
    } catch (error) {
      ok(error instanceof ConfigError);
      match(configErrorText(error, loaded), new RegExp(`PORT .*\\(set in ${dir}/\\.env\\)`));
    }
  });
});

Deno.test("the embedded collector and deno task collect have different default client ids", () => {
  const serve = loadServeConfig({}).collector.mqtt.clientId;
  const collect = loadCollectorConfig({}).mqtt.clientId;
  match(serve, /^ambient-serve-/);
  match(collect, /^ambient-collector-/);
  assertEquals(loadServeConfig({ MQTT_CLIENT_ID: "mine" }).collector.mqtt.clientId, "mine");
});
