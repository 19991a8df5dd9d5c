import { deepStrictEqual as assertEquals, ok, throws } from "node:assert/strict";
import { parseSimulateArgs, UsageError } from "./parse_simulate_args.ts";

function fleet(args: string[]) {
  const parsed = parseSimulateArgs(args);
  if (parsed.help) throw new Error("unexpected --help");
  return parsed.fleet;
}

function refuses(args: string[], mention: string) {
  throws(() => parseSimulateArgs(args), (err: unknown) => {
    ok(err instanceof UsageError, `${args.join(" ")}: ${err}`);
    ok(err.message.includes(mention), `"${err.message}" should mention ${mention}`);
    return true;
  });
}

Deno.test("parseSimulateArgs() with no flags gives three devices and leaves the rest to the fleet defaults", () => {
  const f = fleet([]);
  assertEquals(f.devices, 3);
  assertEquals([f.intervalS, f.rate, f.durationS, f.speed, f.quietDevice, f.seed], [
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
    undefined,
  ]);
});

Deno.test("parseSimulateArgs() reads every documented flag", () => {
  const f = fleet([
    "--devices=1000",
    "--rate",
    "5000",
    "--interval",
    "2.5",
    "--duration",
    "60",
    "--speed",
    "720",
    "--quiet-device",
    "off",
    "--quiet-after",
    "30",
    "--quiet-for",
    "400",
    "--error-rate",
    "0.01",
    "--seed",
    "demo",
    "--prefix",
    "lab_a",
    "--report",
    "0",
  ]);
  assertEquals(f, {
    devices: 1000,
    rate: 5000,
    intervalS: 2.5,
    durationS: 60,
    speed: 720,
    quietDevice: false,
    quietAfterS: 30,
    quietForS: 400,
    errorRate: 0.01,
    seed: "demo",
    prefix: "lab_a",
    reportEveryS: 0,
  });
});

Deno.test("parseSimulateArgs() accepts on/off spellings for --quiet-device and --no-quiet-device", () => {
  assertEquals(fleet(["--quiet-device=on"]).quietDevice, true);
  assertEquals(fleet(["--quiet-device", "false"]).quietDevice, false);
  assertEquals(fleet(["--no-quiet-device"]).quietDevice, false);
  refuses(["--quiet-device", "maybe"], "--quiet-device");
  refuses(["--quiet-device=on", "--no-quiet-device"], "contradict");
});

Deno.test("parseSimulateArgs() recognises --help and -h", () => {
  assertEquals(parseSimulateArgs(["--help"]), { help: true });
  assertEquals(parseSimulateArgs(["-h", "--devices", "x"]), { help: true });
});

Deno.test("parseSimulateArgs() refuses bad values and names the flag", () => {
  refuses(["--devices", "0"], "--devices");
  refuses(["--devices", "2.5"], "--devices");
  refuses(["--devices", "lots"], "--devices");
  refuses(["--interval", "0"], "--interval");
  refuses(["--interval", "-1"], "--interval");
  refuses(["--rate", "NaN"], "--rate");
  refuses(["--speed", "Infinity"], "--speed");
  refuses(["--duration", ""], "--duration");
  refuses(["--error-rate", "1.5"], "--error-rate");
  refuses(["--prefix", "a/b"], "--prefix");
  refuses(["--prefix", "x".repeat(49)], "--prefix");
  refuses(["--seed", " "], "--seed");
  refuses(["--devcies", "3"], "devcies");
  refuses(["extra"], "extra");
});

Deno.test("parseSimulateArgs() refuses a rate finer than millisecond timestamps and suggests a device count", () => {
  refuses(["--devices", "1", "--rate", "5000"], "--devices 3");
  assertEquals(fleet(["--devices", "10", "--rate", "5000"]).rate, 5000);
});
