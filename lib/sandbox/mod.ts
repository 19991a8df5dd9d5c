/**
 * Runs the assistant's pandas/matplotlib code on a query's CSV in docker or bubblewrap, without
 * network, environment, database or host files, within memory and time limits.
 *
 * @module
 */
export { createSandbox } from "./create_sandbox.ts";
export { bwrapArgs, createBwrapSandbox } from "./bwrap.ts";
export { createDockerSandbox, dockerArgs } from "./docker.ts";
export {
  SandboxMemoryExceeded,
  SandboxTimeout,
  SandboxUnavailable,
  SandboxUserError,
} from "./errors.ts";
export type { Sandbox, SandboxJob, SandboxLimits, SandboxResult } from "./types.ts";
