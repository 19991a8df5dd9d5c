/**
 * Device monitor: silence detection (pure), notifiers (Pushover, log), the check loop, and the
 * device status report that `get_device_status` serves from the same rule and state.
 *
 * @module
 */
export {
  type Monitor,
  MONITOR_LOCK_KEY,
  startMonitor,
  type StartMonitorOptions,
} from "./start_monitor.ts";
export {
  detectSilence,
  type DetectSilenceOptions,
  type DetectSilenceResult,
  SUMMARY_MIN_DEVICES,
  SUMMARY_MIN_SHARE,
} from "./detect_silence.ts";
export { deviceHealth, type DeviceHealthOptions } from "./device_health.ts";
export { formatNotice } from "./format_notice.ts";
export {
  CLOCK_TOLERANCE_S,
  type DeviceStatus,
  loadDeviceStatus,
  type LoadDeviceStatusOptions,
} from "./load_device_status.ts";
export { PushoverNotifier, type PushoverNotifierOptions } from "./pushover_notifier.ts";
export { LogNotifier } from "./log_notifier.ts";
export { NotificationRejected } from "./errors.ts";
export type {
  AlertEvent,
  AlertState,
  DeviceActivity,
  DeviceHealth,
  DeviceNotice,
  Notice,
  Notification,
  Notifier,
  SendOptions,
} from "./types.ts";
