import { equal, rejects } from "node:assert/strict";
import { JobQueue } from "./_run_job.ts";
import { SandboxUnavailable } from "./errors.ts";

Deno.test("JobQueue runs at most two jobs at once and refuses past its waiting cap", async () => {
  const queue = new JobQueue({ maxRunning: 2, maxWaiting: 1 });
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  const job = () =>
    queue.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((r) => releases.push(r));
      running--;
    });
  const jobs = [job(), job(), job()];
  await rejects(job(), SandboxUnavailable);
  await new Promise((r) => setTimeout(r, 0));
  equal(releases.length, 2);
  while (releases.length) {
    releases.shift()!();
    await new Promise((r) => setTimeout(r, 0));
  }
  await Promise.all(jobs);
  equal(peak, 2);
});
