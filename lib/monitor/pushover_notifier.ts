import { type Logger, logger } from "../log/mod.ts";
import { abortableSleep } from "./_sleep.ts";
import { NotificationRejected } from "./errors.ts";
import type { Notification, Notifier, SendOptions } from "./types.ts";

/** Options of `PushoverNotifier`. */
export interface PushoverNotifierOptions {
  /** `PUSHOVER_USER`: the user or group key. */
  user: string;
  /** `PUSHOVER_TOKEN`: the application token. */
  token: string;
  /** API base URL without a trailing slash (default `https://api.pushover.net`). */
  apiUrl?: string;
  /**
   * Public base URL of the server; when set (and not a loopback address, which a phone cannot
   * open), every message links to its `/healthz` page.
   */
  serverUrl?: string;
  /**
   * Waits before the retries of a 5xx or network failure (default `[5000, 30000]`: two retries,
   * 5 s and 30 s later). Pushover asks for no sooner than 5 s; shorter values are raised to 5 s.
   */
  retryDelaysMs?: number[];
  /** Abortable wait (default: a timer); tests pass a fake clock. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  /** Per-request timeout (default 15 s). */
  requestTimeoutMs?: number;
  log?: Logger;
}

/** Pushover's size limits, in characters. */
const LIMITS = { title: 250, message: 1024, url: 512, urlTitle: 100 };
const MIN_RETRY_DELAY_MS = 5000;

/**
 * Sends notifications through Pushover (`POST /1/messages.json`). A 4xx is never retried: it
 * rejects with `NotificationRejected` carrying Pushover's `errors` text (a 429 means the monthly
 * message quota is used up). A 5xx or a network failure is retried after the configured delays
 * (never sooner than 5 s) and then rejects with an ordinary error, so the caller keeps the message
 * for later.
 */
export class PushoverNotifier implements Notifier {
  readonly name = "pushover";
  #opts: Required<Omit<PushoverNotifierOptions, "serverUrl">> & { serverUrl?: string };
  #quotaWarned = false;

  constructor(opts: PushoverNotifierOptions) {
    this.#opts = {
      user: opts.user,
      token: opts.token,
      apiUrl: (opts.apiUrl ?? "https://api.pushover.net").replace(/\/+$/, ""),
      serverUrl: opts.serverUrl,
      retryDelaysMs: opts.retryDelaysMs ?? [5000, 30000],
      sleep: opts.sleep ?? abortableSleep,
      requestTimeoutMs: opts.requestTimeoutMs ?? 15_000,
      log: opts.log ?? logger("monitor"),
    };
  }

  /** Delivers `n`, retrying server and network failures; see the class description. */
  async send(n: Notification, opts: SendOptions = {}): Promise<void> {
    const form: Record<string, string> = {
      token: this.#opts.token,
      user: this.#opts.user,
      title: clip(n.title, LIMITS.title),
      message: clip(n.message, LIMITS.message),
      priority: String(n.priority),
      timestamp: String(Math.floor(n.time.getTime() / 1000)),
    };
    const link = healthLink(this.#opts.serverUrl);
    if (link) {
      form.url = clip(link, LIMITS.url);
      form.url_title = "Ambient Sensors server health";
    }
    const delays = this.#opts.retryDelaysMs.map((d) => Math.max(MIN_RETRY_DELAY_MS, d));
    for (let attempt = 0;; attempt++) {
      let failure: Error;
      try {
        const res = await this.#post("/1/messages.json", form, opts.signal);
        if (res.status >= 200 && res.status < 300) {
          this.#checkQuota(res.headers);
          return;
        }
        if (res.status === 429) {
          throw new NotificationRejected(
            "Pushover refused the message with HTTP 429: the application's monthly message " +
              "limit is used up (it resets at the start of the month; see pushover.net/api#limits)",
            { status: 429 },
          );
        }
        if (res.status >= 400 && res.status < 500) {
          throw new NotificationRejected(
            `Pushover refused the message with HTTP ${res.status}: ${res.errors}`,
            { status: res.status },
          );
        }
        failure = new Error(`Pushover answered HTTP ${res.status}: ${res.errors}`);
      } catch (error) {
        if (error instanceof NotificationRejected || opts.signal?.aborted) throw error;
        failure = error as Error;
      }
      if (attempt >= delays.length) throw failure;
      this.#opts.log.warn("Pushover delivery failed; retrying", {
        error: failure.message,
        retry_in_s: delays[attempt] / 1000,
        title: n.title,
      });
      await this.#opts.sleep(delays[attempt], opts.signal);
    }
  }

  /**
   * Checks the token and user key with `POST /1/users/validate.json`. Rejects with
   * `NotificationRejected` when Pushover says either is wrong, with an ordinary error when
   * Pushover cannot be asked right now.
   */
  async validate(opts: SendOptions = {}): Promise<void> {
    const res = await this.#post(
      "/1/users/validate.json",
      { token: this.#opts.token, user: this.#opts.user },
      opts.signal,
    );
    if (res.status >= 200 && res.status < 300) return;
    if (res.status >= 400 && res.status < 500) {
      const which = [
        res.body.token === "invalid" ? "PUSHOVER_TOKEN" : "",
        res.body.user === "invalid" ? "PUSHOVER_USER" : "",
      ].filter(Boolean).join(" and ") || "PUSHOVER_TOKEN or PUSHOVER_USER";
      throw new NotificationRejected(
        `Pushover does not accept ${which} (HTTP ${res.status}): ${res.errors}`,
        { status: res.status },
      );
    }
    throw new Error(`Pushover answered HTTP ${res.status}: ${res.errors}`);
  }

  async #post(
    path: string,
    form: Record<string, string>,
    signal: AbortSignal | undefined,
  ): Promise<{ status: number; headers: Headers; body: Record<string, unknown>; errors: string }> {
    const timeout = new AbortController();
    const timer = setTimeout(
      () => timeout.abort(new Error(`no answer within ${this.#opts.requestTimeoutMs / 1000} s`)),
      this.#opts.requestTimeoutMs,
    );
    const url = `${this.#opts.apiUrl}${path}`;
    try {
      const res = await fetch(url, {
        method: "POST",
        body: new URLSearchParams(form),
        signal: signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal,
      });
      const text = await res.text();
      let body: Record<string, unknown> = {};
      try {
        const parsed = JSON.parse(text);
        if (parsed && typeof parsed === "object") body = parsed;
      } catch {
        // Not JSON (a proxy's error page): fall back to the status line below.
      }
      const errors = Array.isArray(body.errors) && body.errors.length > 0
        ? body.errors.map(String).join("; ")
        : res.statusText || "no error text";
      return { status: res.status, headers: res.headers, body, errors };
    } catch (error) {
      if (signal?.aborted) throw error;
      const reason = timeout.signal.aborted
        ? (timeout.signal.reason as Error).message
        : (error as Error).message;
      throw new Error(`Cannot reach Pushover at ${hostOf(url)}: ${reason}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }

  #checkQuota(headers: Headers): void {
    const remaining = Number(headers.get("x-limit-app-remaining"));
    if (!headers.has("x-limit-app-remaining") || !Number.isFinite(remaining)) return;
    if (remaining < 100 && !this.#quotaWarned) {
      this.#quotaWarned = true;
      this.#opts.log.warn("Pushover's monthly message quota is almost used up", { remaining });
    }
  }
}

function healthLink(serverUrl: string | undefined): string | undefined {
  if (!serverUrl) return undefined;
  let u: URL;
  try {
    u = new URL(serverUrl);
  } catch {
    return undefined;
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  if (host === "localhost" || host === "::1" || /^127\./.test(host)) return undefined;
  return `${serverUrl.replace(/\/+$/, "")}/healthz`;
}

function clip(s: string, max: number): string {
  const chars = [...s];
  return chars.length <= max ? s : chars.slice(0, max - 1).join("") + "…";
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "(bad URL)";
  }
}
