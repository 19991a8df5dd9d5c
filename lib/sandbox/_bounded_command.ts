/**
 * Runs a host command (an engine's client, the allowed python) to its end, killed with SIGKILL
 * when it has not ended within `timeoutMs`: a hung `docker` client or a stuck tool never holds a
 * job, a shutdown or the server's start. Environment cleared to `env`; stdin closed; stdout and
 * stderr collected when `capture` is set, else discarded.
 */
export async function runBounded(
  cmd: string,
  args: string[],
  opts: { timeoutMs: number; env?: Record<string, string>; capture?: boolean },
): Promise<Deno.CommandOutput> {
  const io = opts.capture ? "piped" : "null";
  const child = new Deno.Command(cmd, {
    args,
    clearEnv: true,
    env: opts.env,
    stdin: "null",
    stdout: io,
    stderr: io,
  }).spawn();
  const timer = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  }, opts.timeoutMs);
  try {
    if (opts.capture) return await child.output();
    const status = await child.status;
    return { ...status, stdout: new Uint8Array(), stderr: new Uint8Array() };
  } finally {
    clearTimeout(timer);
  }
}
