// Who may connect to the embedded broker and what each client may publish, subscribe and retain
// (README "Devices and the embedded broker").
import { timingSafeEqual } from "node:crypto";

/** The accounts of the embedded broker. */
export interface BrokerAccounts {
  /** The service account (collector, simulator): publishes and subscribes everywhere. */
  service?: { username: string; password: string };
  /** Per-device accounts: device id (= username) → password. */
  devices: Map<string, string>;
}

/** Who a connected client is. */
export type Identity =
  | { kind: "anonymous" }
  | { kind: "service"; username: string }
  | { kind: "device"; id: string };

const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
/** Topics where the contract uses retained messages (capabilities and the last will). */
const RETAINABLE = /^devices\/[A-Za-z0-9_-]{1,64}\/(capabilities|status)$/;
/** Client ids one device account may hold; older claims are forgotten past this. */
const CLAIMS_PER_DEVICE = 8;

function sameSecret(given: Uint8Array | undefined, expected: string): boolean {
  if (!given) return false;
  const a = new Uint8Array(given);
  const b = new TextEncoder().encode(expected);
  // Equal lengths for timingSafeEqual; the length check itself leaks only the length.
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Parses a device credentials file: one `device_id:password` per line; blank lines and lines
 * starting with `#` are skipped. The message of a bad line names its number, never its content.
 */
export function parseDeviceCredentials(text: string, source: string): Map<string, string> {
  const devices = new Map<string, string>();
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === "" || t.startsWith("#")) return;
    const colon = t.indexOf(":");
    const id = colon > 0 ? t.slice(0, colon) : "";
    const password = colon > 0 ? t.slice(colon + 1) : "";
    if (!DEVICE_ID.test(id) || password.length < 8) {
      throw new Error(
        `${source} line ${i + 1}: expected device_id:password (id matching [A-Za-z0-9_-]{1,64}, ` +
          "password of at least 8 characters)",
      );
    }
    if (devices.has(id)) throw new Error(`${source} line ${i + 1}: device "${id}" listed twice`);
    devices.set(id, password);
  });
  return devices;
}

/** The access rules of one broker. */
export class BrokerAccess {
  readonly #accounts: BrokerAccounts;
  /** Client id → account that holds it (with credentials only). */
  readonly #claims = new Map<string, string>();
  readonly #claimsOf = new Map<string, string[]>();

  constructor(accounts: BrokerAccounts, reservedClientIds: string[] = []) {
    this.#accounts = accounts;
    if (accounts.service) {
      for (const id of reservedClientIds) {
        this.#claims.set(id, `service:${accounts.service.username}`);
      }
    }
  }

  /** True when clients must log in. */
  get required(): boolean {
    return this.#accounts.service !== undefined || this.#accounts.devices.size > 0;
  }

  /**
   * Who `username`/`password` are, or a reason to refuse the connection. A device account may
   * not take a client id another account holds (that would end the other's session).
   */
  authenticate(
    clientId: string,
    username: string | undefined,
    password: Uint8Array | undefined,
  ): Identity | string {
    if (!this.required) return { kind: "anonymous" };
    if (username === undefined) return "anonymous clients are not accepted";
    const service = this.#accounts.service;
    let identity: Identity | undefined;
    if (service && username === service.username && sameSecret(password, service.password)) {
      identity = { kind: "service", username };
    } else {
      const expected = this.#accounts.devices.get(username);
      if (expected !== undefined && sameSecret(password, expected)) {
        identity = { kind: "device", id: username };
      }
    }
    if (!identity) return "bad user name or password";
    const account = identity.kind === "service" ? `service:${username}` : `device:${username}`;
    const holder = this.#claims.get(clientId);
    if (holder !== undefined && holder !== account) {
      return `client id "${clientId.slice(0, 64)}" belongs to another account`;
    }
    if (holder === undefined) this.#claim(clientId, account, identity.kind === "device");
    return identity;
  }

  #claim(clientId: string, account: string, capped: boolean) {
    this.#claims.set(clientId, account);
    if (!capped) return;
    const list = this.#claimsOf.get(account) ?? [];
    list.push(clientId);
    while (list.length > CLAIMS_PER_DEVICE) this.#claims.delete(list.shift()!);
    this.#claimsOf.set(account, list);
  }

  /** Why `who` may not publish on `topic`, or undefined when it may. */
  publishDenied(who: Identity | undefined, topic: string): string | undefined {
    if (topic.startsWith("$")) return "topics starting with $ are reserved";
    if (!who) return "not logged in";
    if (who.kind === "device" && !topic.startsWith(`devices/${who.id}/`)) {
      return `device "${who.id}" may publish only under devices/${who.id}/`;
    }
    return undefined;
  }

  /** Whether `who` may subscribe to `filter`. */
  maySubscribe(who: Identity | undefined, filter: string): boolean {
    if (!who) return false;
    if (who.kind !== "device") return true;
    // Only its own subtree; a filter may not reach other devices through + or #.
    const own = `devices/${who.id}/`;
    return filter.startsWith(own);
  }
}

/** Retained messages the broker keeps: only on capabilities and status topics, capped. */
export class RetainedBudget {
  readonly #sizes = new Map<string, number>();
  #bytes = 0;
  readonly maxTopics: number;
  readonly maxBytes: number;

  constructor(opts: { maxTopics: number; maxBytes: number }) {
    this.maxTopics = opts.maxTopics;
    this.maxBytes = opts.maxBytes;
  }

  /** Retained topics and payload bytes kept now. */
  get usage(): { topics: number; bytes: number } {
    return { topics: this.#sizes.size, bytes: this.#bytes };
  }

  /**
   * Whether a retained message on `topic` with `size` payload bytes may be kept; bookkeeping is
   * updated when it may. An empty payload clears the topic and is always kept.
   */
  admit(topic: string, size: number): boolean {
    const old = this.#sizes.get(topic);
    if (size === 0) {
      if (old !== undefined) {
        this.#sizes.delete(topic);
        this.#bytes -= old;
      }
      return true;
    }
    if (!RETAINABLE.test(topic)) return false;
    const topics = this.#sizes.size + (old === undefined ? 1 : 0);
    const bytes = this.#bytes - (old ?? 0) + size;
    if (topics > this.maxTopics || bytes > this.maxBytes) return false;
    this.#sizes.set(topic, size);
    this.#bytes = bytes;
    return true;
  }
}
