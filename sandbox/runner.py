"""Runs one analysis or plot job for the Ambient Sensors MCP sandbox.

Usage: python runner.py <job_dir>
       python runner.py supervise <memory_bytes> <max_processes> <cpus> <job_dir>
The job folder holds job.json ({"mode": "analyze"|"plot"}), data.csv and code.py.
Results leave over the process's stdout as frames "<kind> <length>\n<bytes>": "result" (JSON:
status, stdout, stderr, error) and, for plots, "png". Nothing is written to files: the server never
opens a path the job could have replaced (see README, "Sandbox"). The server treats these frames
as untrusted and enforces its own caps on them.

`supervise` is for hosts without usable cgroups: it runs as pid 1 of the job's pid namespace,
starts the job and accounts for all of its processes together (proportional memory, process count,
CPU time); past a limit it kills them all and exits with 90 (memory) or 91 (processes). CPU above
the share is throttled by stopping every process for the excess.
"""
import io
import json
import os
import re
import signal
import sys
import time
import traceback

CAP = 100 * 1024
PNG_CAP = 16 * 1024 * 1024
EXIT_MEMORY = 90
EXIT_PROCESSES = 91
PR_SET_DUMPABLE = 4
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}")


class CappedIO(io.TextIOBase):
    """A text sink that keeps at most CAP characters and notes the cut."""

    def __init__(self):
        self.parts = []
        self.size = 0
        self.cut = False

    def writable(self):
        return True

    def write(self, s):
        if self.size < CAP:
            keep = s[: CAP - self.size]
            self.parts.append(keep)
            self.size += len(keep)
            if len(keep) < len(s):
                self.cut = True
        elif s:
            self.cut = True
        return len(s)

    def value(self):
        text = "".join(self.parts)
        if self.cut:
            text += "\n[output cut at %d KB]" % (CAP // 1024)
        return text


class SetupFailed(Exception):
    """Loading the job failed before the user's code ran."""


def load_csv(pd, path):
    df = pd.read_csv(path)
    for col in df.columns:
        name = str(col).lower()
        looks = name in ("time", "timestamp") or name.endswith("_at")
        if not looks and df[col].dtype == object:
            sample = df[col].dropna().head(20).astype(str)
            looks = len(sample) > 0 and all(ISO.match(v) for v in sample)
        if looks:
            try:
                # UTC without a zone: matplotlib converts naive datetime64 at numpy speed, while a
                # zoned column goes through one Python object per point (0.6 s per 100k points).
                df[col] = pd.to_datetime(df[col], utc=True).dt.tz_localize(None)
            except (ValueError, TypeError):
                pass
    return df


def user_traceback(exc):
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == "<analysis>"]
    lines = ["Traceback (most recent call last):\n"]
    lines += traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def send(fd, kind, payload):
    data = b"%s %d\n" % (kind, len(payload)) + payload
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def main(job_dir):
    # The result channel is a private copy of fd 1; fd 1 itself now goes to stderr, so whatever
    # the code writes straight to it cannot interleave with the frames.
    chan = os.dup(1)
    os.dup2(2, 1)
    png = None
    with open(os.path.join(job_dir, "job.json")) as f:
        job = json.load(f)
    with open(os.path.join(job_dir, "code.py")) as f:
        code = f.read()
    result = {"status": "ok", "stdout": "", "stderr": "", "error": None}
    out, err = CappedIO(), CappedIO()
    real_out, real_err = sys.stdout, sys.stderr
    started = False
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import numpy as np
        import pandas as pd

        plt.rcParams["figure.figsize"] = (10, 5)
        plt.rcParams["figure.dpi"] = 100
        try:
            df = load_csv(pd, os.path.join(job_dir, "data.csv"))
        except Exception as exc:  # noqa: BLE001 - a bad CSV is reported, not a user traceback
            result["status"] = "setup"
            result["error"] = "Could not load the query result: %s" % exc
            raise SetupFailed() from exc
        namespace = {"__name__": "__main__", "df": df, "pd": pd, "np": np, "plt": plt}
        started = True
        compiled = compile(code, "<analysis>", "exec")
        sys.stdout, sys.stderr = out, err
        try:
            exec(compiled, namespace)
        finally:
            sys.stdout, sys.stderr = real_out, real_err
        if job.get("mode") == "plot":
            fig = plt.gcf()
            has_art = any(ax.has_data() or ax.get_images() for ax in fig.get_axes())
            if not fig.get_axes() or not has_art:
                result["status"] = "error"
                result["error"] = (
                    "The figure is empty: nothing was drawn. Call plt.plot(...) or df.plot(...) "
                    "(or another plotting function) in plot_code."
                )
            else:
                buf = io.BytesIO()
                fig.savefig(buf, format="png")
                png = buf.getvalue()
                if len(png) > PNG_CAP:
                    result["status"] = "error"
                    result["error"] = (
                        "The figure's PNG is %.1f MB, over the %d MB limit. Use a smaller figsize "
                        "or dpi, or fewer points (resample in SQL)."
                        % (len(png) / 1048576, PNG_CAP // 1048576)
                    )
                    png = None
    except SetupFailed:
        pass
    except ImportError as exc:
        sys.stdout, sys.stderr = real_out, real_err
        if started:
            result["status"] = "error"
            result["error"] = user_traceback(exc) + "(only pandas, numpy and matplotlib are available)\n"
        else:
            result["status"] = "setup"
            result["error"] = "The sandbox Python lacks a module: %s" % exc
    except MemoryError:
        sys.stdout, sys.stderr = real_out, real_err
        result["status"] = "memory"
        result["error"] = "MemoryError: the code needed more memory than the sandbox allows."
    except SyntaxError as exc:
        sys.stdout, sys.stderr = real_out, real_err
        result["status"] = "error"
        result["error"] = "".join(traceback.format_exception_only(type(exc), exc))
    except BaseException as exc:  # noqa: BLE001 - user code may raise anything, SystemExit too
        sys.stdout, sys.stderr = real_out, real_err
        result["status"] = "error"
        result["error"] = user_traceback(exc)
    result["stdout"] = out.value()
    result["stderr"] = err.value()
    if png is not None and result["status"] == "ok":
        send(chan, b"png", png)
    send(chan, b"result", json.dumps(result).encode())
    os.close(chan)


def job_processes():
    """Pids of every process in this pid namespace except this supervisor."""
    me = os.getpid()
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) != me]


def memory_kb(pid):
    """Proportional set size: shared pages count once across the job, so forks are not overcounted.
    Where smaps_rollup cannot be read, the resident size (which overcounts) stands in."""
    try:
        with open("/proc/%d/smaps_rollup" % pid, "rb") as f:
            for line in f:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    try:
        with open("/proc/%d/statm" % pid, "rb") as f:
            return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)
    except (OSError, IndexError, ValueError):
        return 0


def cpu_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, IndexError, ValueError):
        return None


def signal_all(pids, sig):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass


def supervise(memory_bytes, max_processes, cpus, job_dir):
    import ctypes

    prctl = ctypes.CDLL(None).prctl
    # Not dumpable: code in the job cannot ptrace this process or read its memory. Signals from
    # inside the namespace cannot kill pid 1 either.
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    child = os.fork()
    if child == 0:
        try:
            # The job's processes stay dumpable, so their /proc files remain readable here.
            prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
            main(job_dir)
        finally:
            os._exit(0)
    hz = os.sysconf("SC_CLK_TCK")
    started = time.monotonic()
    seen = {}
    dead_ticks = 0
    status = None
    verdict = 0
    while status is None:
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid, st = 0, 0
            if pid == 0:
                break
            if pid == child:
                status = st
        if status is not None:
            break
        pids = job_processes()
        if len(pids) > max_processes:
            verdict = EXIT_PROCESSES
            break
        if sum(memory_kb(p) for p in pids) * 1024 > memory_bytes:
            verdict = EXIT_MEMORY
            break
        now = {}
        for p in pids:
            ticks = cpu_ticks(p)
            if ticks is not None:
                now[p] = ticks
        dead_ticks += sum(t for p, t in seen.items() if p not in now)
        seen = now
        used = (dead_ticks + sum(now.values())) / hz
        allowed = cpus * (time.monotonic() - started)
        if used > allowed + 0.05:
            signal_all(pids, signal.SIGSTOP)
            time.sleep(min((used - allowed) / cpus, 1.0))
            signal_all(job_processes(), signal.SIGCONT)
        time.sleep(0.01)
    if verdict:
        signal_all(job_processes(), signal.SIGKILL)
        os._exit(verdict)
    os._exit(os.waitstatus_to_exitcode(status) if os.WIFEXITED(status) else 1)


if __name__ == "__main__":
    if sys.argv[1] == "supervise":
        supervise(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
    else:
        main(sys.argv[1])
