/**
 * Runs the assistant's pandas/matplotlib code on a query's CSV in docker or bubblewrap, without
 * network, environment, database or host files, within memory, process, CPU, disk and time limits
 * that bound each job as a whole; results come back over a capped pipe, never as files.
 *
 * @module
 */
export { createSandbox } from "./create_sandbox.ts";
export { bwrapArgs, createBwrapSandbox } from "./bwrap.ts";
export { createDockerSandbox, dockerArgs } from "./docker.ts";
export {
  SandboxLimitExceeded,
  SandboxMemoryExceeded,
  SandboxTimeout,
  SandboxUnavailable,
  SandboxUserError,
} from "./errors.ts";
export type { Sandbox, SandboxJob, SandboxLimits, SandboxResult, SandboxUsage } from "./types.ts";
