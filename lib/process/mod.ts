/**
 * How every entrypoint starts and stops: the exit statuses, the stop signal (one Ctrl+C counts
 * once; a deliberate second one leaves at once) and the permission flags of each task.
 *
 * @module
 */
export { EXIT } from "./exit_codes.ts";
export { stopSignal, type StopSignalOptions } from "./stop_signal.ts";
export { permissionFlags, type TaskName } from "./permission_flags.ts";
export { BROKER_FILE, type BrokerFile, readBrokerFile, writeBrokerFile } from "./broker_file.ts";
export { type RunOptions, taskSettings } from "./run_options.ts";
