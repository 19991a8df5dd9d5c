import { join } from "node:path";

/** Name of the file, under DATA_DIR, where `serve` leaves the address of its embedded broker. */
export const BROKER_FILE = "broker.json";
const MAX_BYTES = 4096;
const PROTOCOLS = ["mqtt:", "mqtts:", "ws:", "wss:"];

/** What `serve` leaves in `DATA_DIR/broker.json` while its embedded broker runs. */
export interface BrokerFile {
  /** The broker's address, e.g. `mqtt://127.0.0.1:1884`. */
  url: string;
  /** Absolute path of the file it was read from. */
  file: string;
}

/**
 * Writes `DATA_DIR/broker.json` (atomically: a temporary file renamed over it) so that
 * `deno task simulate` in the same folder finds the running broker; returns a function that
 * removes it again, called when the server stops. See docs/architecture.md.
 */
export async function writeBrokerFile(dataDir: string, url: string): Promise<() => Promise<void>> {
  const file = join(dataDir, BROKER_FILE);
  const tmp = `${file}.${Deno.pid}.tmp`;
  const body = JSON.stringify({ url, pid: Deno.pid, started: new Date().toISOString() }) + "\n";
  await Deno.writeTextFile(tmp, body);
  await Deno.rename(tmp, file);
  return async () => {
    try {
      await Deno.remove(file);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
  };
}

/**
 * Reads `DATA_DIR/broker.json`; undefined when it is absent, too large, not JSON or holds no MQTT
 * URL (a stale file of a crashed server is returned as it is: connecting then fails and says
 * where the address came from).
 */
export function readBrokerFile(dataDir: string): BrokerFile | undefined {
  const file = join(dataDir, BROKER_FILE);
  let text: string;
  try {
    if (Deno.statSync(file).size > MAX_BYTES) return undefined;
    text = Deno.readTextFileSync(file);
  } catch {
    return undefined;
  }
  try {
    const url = (JSON.parse(text) as { url?: unknown }).url;
    if (typeof url !== "string" || url.length > 512) return undefined;
    const parsed = new URL(url);
    if (!PROTOCOLS.includes(parsed.protocol) || parsed.username || parsed.password) {
      return undefined;
    }
    return { url: parsed.toString().replace(/\/$/, ""), file };
  } catch {
    return undefined;
  }
}
