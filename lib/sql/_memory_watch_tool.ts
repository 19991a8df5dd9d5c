/**
 * The watcher of one database backend's memory, run with the host's python (`python3 -I -S -c
 * MEMORY_WATCH_TOOL <pid> <client port or "local"> <limit bytes> <poll ms>`): Deno reads /proc
 * only with --allow-all, which the server's permission set does not have. Trusted host code.
 *
 * It first checks that `pid` is a PostgreSQL backend serving the server's own connection (its
 * command line names the connection's client port, or `[local]` for a Unix socket); if not it
 * prints `foreign` and exits. Then it reads the backend's RssAnon (private memory, without shared
 * buffers) every poll; past the limit it prints `over <bytes>` and exits. It exits by itself when
 * the backend is gone or its parent (the server) has died.
 */
export const MEMORY_WATCH_TOOL = String.raw`
import os, sys, time

pid, port, limit, poll = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]) / 1000
parent = os.getppid()

def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()

try:
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
except OSError:
    cmdline = ""
mark = "[local]" if port == "local" else "(%s)" % port
if not cmdline.startswith("postgres") or mark not in cmdline:
    say("foreign")
    sys.exit(0)
while os.getppid() == parent:
    try:
        with open("/proc/%d/status" % pid) as f:
            status = f.read()
    except OSError:
        break
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            rss = int(line.split()[1]) * 1024
            if rss > limit:
                say("over %d" % rss)
                sys.exit(0)
            break
    time.sleep(poll)
`;
