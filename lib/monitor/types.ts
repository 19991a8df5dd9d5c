/** What the monitor makes of a device at one moment. */
export type DeviceHealth = "online" | "silent" | "offline";

/** A device and its latest activity, as the monitor reads it from the database. */
export interface DeviceActivity {
  deviceId: string;
  /** Name from the device's capabilities, when it sent one. */
  name: string | null;
  location: string | null;
  /** Latest status word, lower case (`online`, `offline`, …); null when it never sent one. */
  status: string | null;
  /** When the latest status message arrived; null when none is recorded. */
  statusAt: Date | null;
  /** Time of the newest stored reading, by the device's clock. */
  lastReadingAt: Date | null;
  /**
   * When the collector last received a live message of any kind (reading, status, capabilities,
   * error), by its own clock: what silence is judged by, whatever the device's clock says.
   */
  lastSeen: Date | null;
  /**
   * The device's clock minus the collector's, in seconds, from its newest reading with a
   * timestamp; null when unknown.
   */
  clockOffsetS?: number | null;
  /** When the device was registered; stands in for activity when it never sent anything. */
  firstSeen: Date;
}

/** A notification owed to the user about one device. */
export type AlertEvent =
  | {
    /** The device stopped reporting for longer than the threshold. */
    kind: "silent";
    /** Start of the outage: the device's last activity. */
    downSince: Date;
    /** When the threshold was crossed. */
    at: Date;
  }
  | {
    /** The device said `offline` (usually its MQTT last will). */
    kind: "offline";
    downSince: Date;
    at: Date;
  }
  | {
    /** The device reports again. */
    kind: "back";
    downSince: Date;
    /** When it reported again. */
    at: Date;
    /** True when the outage alert itself was never delivered. */
    unreported: boolean;
  };

/** Monitor state of one device: a row of `device_alerts`. */
export interface AlertState {
  deviceId: string;
  state: DeviceHealth;
  /** When `state` began; for silent and offline devices, the start of the outage. */
  since: Date;
  /** When the last notification about the device was delivered. */
  notifiedAt: Date | null;
  /** The notification still to be delivered, if any. */
  pending: AlertEvent | null;
  /** Why the last delivery failed; null after a successful one. */
  lastError: string | null;
  /**
   * The row's version as read (undefined: no row yet). Every write checks and moves it on, so a
   * monitor that read stale state (another one wrote since) changes nothing.
   */
  version?: number;
}

/** One device's pending event, with the device it is about. */
export interface DeviceNotice {
  device: DeviceActivity;
  event: AlertEvent;
}

/** What to send: one message per device, or one summary for many. */
export type Notice =
  | { kind: "device"; notice: DeviceNotice }
  | {
    kind: "summary";
    /** `down`: devices went silent or offline; `up`: devices report again. */
    direction: "down" | "up";
    notices: DeviceNotice[];
    /** Devices in that direction after the check (silent+offline, or online). */
    count: number;
    /** All known devices. */
    total: number;
  };

/** A message for a person, independent of the channel that carries it. */
export interface Notification {
  title: string;
  message: string;
  /** Pushover priorities: -1 quiet, 0 normal, 1 high. */
  priority: -1 | 0 | 1;
  /** When the event happened. */
  time: Date;
  /** Devices the message is about. */
  deviceIds: string[];
}

/** Options of `Notifier.send`. */
export interface SendOptions {
  /** Aborts retries and the request in flight (the monitor is stopping). */
  signal?: AbortSignal;
}

/**
 * Delivers notifications. `send` resolves once delivered, rejects with `NotificationRejected`
 * when the service refused the message for good (never retry it), and with any other error when
 * delivery may succeed later.
 */
export interface Notifier {
  send(n: Notification, opts?: SendOptions): Promise<void>;
  /** Checks the credentials once at start-up; rejects with a message a person can act on. */
  validate?(opts?: SendOptions): Promise<void>;
  /** Short name for logs, e.g. `pushover`. */
  readonly name: string;
}
