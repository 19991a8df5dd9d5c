/**
 * The host-side tool that does the sandbox's cgroup work, run with the allowed python (`python3
 * -I -S -c CGROUP_TOOL '<json>'`). Deno lets a process touch /proc and /sys only with
 * --allow-all, which the server's permission set does not have; the python the server may run
 * anyway (the bwrap engine's launcher) reads and writes them for it. Trusted code: it runs on the
 * host, outside any sandbox, and is given only paths it derives itself from /proc.
 *
 * Input: one JSON object with `op`:
 * - `detect` {serverPid}: finds the server's groups and probes one job group; prints
 *   {mode: "cgroup-v2", parents: [dir]} or {mode: "cgroup-v1", parents: [memory, pids, cpu]}, or
 *   {mode: null, why}.
 * - `create` {mode, parents, name, memoryBytes, maxProcesses, cpus}: makes the job's groups with
 *   their limits; prints {procs: [cgroup.procs files]}.
 * - `usage` {mode, parents, name}: prints {peakMemoryBytes, oomKills, forksRefused,
 *   cpuThrottledPeriods}.
 * - `remove` {mode, parents, name}: kills what is left in the groups and removes them (retrying
 *   while exiting processes still hold them, up to 10 s); prints {left: [groups not removed]}.
 * - `finish` {mode, parents, name}: `usage`, then `remove`; prints both in one object.
 * - `sweep` {mode, parents, minAgeS}: removes empty `ambient-sandbox-*` groups older than that;
 *   prints {removed: [dirs]}.
 * Errors: a message on stderr, exit status 1.
 */
export const CGROUP_TOOL = String.raw`
import json, os, signal, sys, time

V1 = ("memory", "pids", "cpu")
PERIOD = 100000
LEAF = "ambient-server"

def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None

def write(path, value):
    with open(path, "w") as f:
        f.write(value)

def keyed(text):
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = int(parts[1])
    return out

def own_groups(pid):
    v2 = None
    v1 = {}
    for line in (read("/proc/self/mounts") or "").splitlines():
        f = line.split(" ")
        if len(f) < 4:
            continue
        if f[2] == "cgroup2" and v2 is None:
            v2 = f[1]
        if f[2] == "cgroup":
            for opt in f[3].split(","):
                if opt in V1:
                    v1[opt] = f[1]
    own = {}
    for line in (read("/proc/%d/cgroup" % pid) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            for c in parts[1].split(","):
                own[c] = parts[2]
    return v2, v1, own

def dirs(spec, name):
    return [os.path.join(p, name) for p in spec["parents"]]

def create(spec):
    made = []
    try:
        for d in dirs(spec, spec["name"]):
            os.mkdir(d)
            made.append(d)
        mem = spec["memoryBytes"]
        quota = "%d" % round(spec["cpus"] * PERIOD)
        if spec["mode"] == "cgroup-v2":
            d = made[0]
            write(d + "/memory.max", str(mem))
            try:
                write(d + "/memory.swap.max", "0")
            except OSError:
                pass
            write(d + "/pids.max", str(spec["maxProcesses"]))
            write(d + "/cpu.max", "%s %d" % (quota, PERIOD))
        else:
            m, p, c = made
            write(m + "/memory.limit_in_bytes", str(mem))
            try:
                # memory plus swap equal to memory: no swapping past the limit
                write(m + "/memory.memsw.limit_in_bytes", str(mem))
            except OSError:
                pass
            write(p + "/pids.max", str(spec["maxProcesses"]))
            write(c + "/cpu.cfs_period_us", str(PERIOD))
            write(c + "/cpu.cfs_quota_us", quota)
    except OSError:
        remove_dirs(made, spec["mode"])
        raise
    return {"procs": [d + "/cgroup.procs" for d in made]}

def usage(spec):
    ds = dirs(spec, spec["name"])
    if spec["mode"] == "cgroup-v2":
        d = ds[0]
        peak = read(d + "/memory.peak")
        return {
            "peakMemoryBytes": int(peak) if peak and peak.strip().isdigit() else None,
            "oomKills": keyed(read(d + "/memory.events")).get("oom_kill", 0),
            "forksRefused": keyed(read(d + "/pids.events")).get("max", 0),
            "cpuThrottledPeriods": keyed(read(d + "/cpu.stat")).get("nr_throttled"),
        }
    m, p, c = ds
    peak = read(m + "/memory.max_usage_in_bytes")
    return {
        "peakMemoryBytes": int(peak) if peak and peak.strip().isdigit() else None,
        "oomKills": keyed(read(m + "/memory.oom_control")).get("oom_kill", 0),
        "forksRefused": keyed(read(p + "/pids.events")).get("max", 0),
        "cpuThrottledPeriods": keyed(read(c + "/cpu.stat")).get("nr_throttled"),
    }

def tasks(d):
    return [int(x) for x in (read(d + "/cgroup.procs") or "").split() if x.isdigit()]

def kill(d, mode):
    if mode == "cgroup-v2":
        try:
            write(d + "/cgroup.kill", "1")
            return
        except OSError:
            pass
    for pid in tasks(d):
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass

def remove_dirs(ds, mode):
    left = []
    for d in ds:
        if os.path.isdir(d) and tasks(d):
            kill(d, mode)
        # A group is busy until its last process is gone: retry quickly at first (a job's
        # processes are usually reaped within milliseconds), then every 0.1 s up to 10 s, killing
        # what is left again about every second.
        deadline = time.monotonic() + 10
        delay = 0.002
        next_kill = time.monotonic() + 1
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:
                now = time.monotonic()
                if now > deadline:
                    left.append("%s: %s" % (d, e))
                    break
                if now > next_kill:
                    kill(d, mode)
                    next_kill = now + 1
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
    return left

def sweep(spec):
    removed = []
    now = time.time()
    for parent in spec["parents"]:
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for n in names:
            d = os.path.join(parent, n)
            if not n.startswith("ambient-sandbox-") or not os.path.isdir(d):
                continue
            try:
                if now - os.stat(d).st_mtime < spec["minAgeS"] or tasks(d):
                    continue
                os.rmdir(d)
                removed.append(d)
            except OSError:
                pass
    return {"removed": removed}

def detect(spec):
    pid = spec["serverPid"]
    v2, v1, own = own_groups(pid)
    why = []
    candidates = []
    if v2 and "" in own:
        base = (v2 + own[""]).rstrip("/")
        if base.endswith("/" + LEAF):
            base = base[: -len(LEAF) - 1]
        controllers = (read(base + "/cgroup.controllers") or "").split()
        if all(c in controllers for c in V1):
            enabled = (read(base + "/cgroup.subtree_control") or "").split()
            try:
                if not all(c in enabled for c in V1):
                    # A group with processes cannot hand controllers to children: move the server
                    # (and this tool) into a leaf of its own group first, as systemd's
                    # Delegate=yes expects.
                    os.makedirs(base + "/" + LEAF, exist_ok=True)
                    write(base + "/" + LEAF + "/cgroup.procs", str(pid))
                    write(base + "/" + LEAF + "/cgroup.procs", str(os.getpid()))
                    write(base + "/cgroup.subtree_control", "+memory +pids +cpu")
                candidates.append({"mode": "cgroup-v2", "parents": [base]})
            except OSError as e:
                why.append("cgroup v2 is not delegated to the server: %s" % e)
        else:
            why.append("cgroup v2 lacks the memory, pids or cpu controller here")
    if all(c in v1 for c in V1):
        candidates.append({
            "mode": "cgroup-v1",
            "parents": [(v1[c] + own.get(c, "/")).rstrip("/") for c in V1],
        })
    for cand in candidates:
        probe = dict(cand, name="ambient-probe-%d-%d" % (os.getpid(), time.time_ns()),
                     memoryBytes=64 << 20, maxProcesses=8, cpus=1)
        try:
            create(probe)
            remove_dirs(dirs(probe, probe["name"]), cand["mode"])
            return cand
        except OSError as e:
            why.append("%s is not usable: %s" % (cand["mode"], e))
    return {"mode": None, "why": "; ".join(why) or "no cgroup hierarchy is mounted"}

def main():
    spec = json.loads(sys.argv[1])
    op = spec["op"]
    if op == "detect":
        out = detect(spec)
    elif op == "create":
        out = create(spec)
    elif op == "usage":
        out = usage(spec)
    elif op == "remove":
        out = {"left": remove_dirs(dirs(spec, spec["name"]), spec["mode"])}
    elif op == "finish":
        out = usage(spec)
        out["left"] = remove_dirs(dirs(spec, spec["name"]), spec["mode"])
    elif op == "sweep":
        out = sweep(spec)
    else:
        raise SystemExit("unknown op " + op)
    sys.stdout.write(json.dumps(out))

try:
    main()
except OSError as e:
    sys.stderr.write(str(e))
    sys.exit(1)
`;
