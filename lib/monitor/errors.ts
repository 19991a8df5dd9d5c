/**
 * The notification service refused a message for good (an HTTP 4xx from Pushover): retrying the
 * same request cannot succeed, so the monitor drops the message instead of keeping it pending.
 */
export class NotificationRejected extends Error {
  /** HTTP status of the refusal. */
  readonly status: number;
  constructor(message: string, opts: { status: number; cause?: unknown }) {
    super(message, { cause: opts.cause });
    this.name = "NotificationRejected";
    this.status = opts.status;
  }
}
