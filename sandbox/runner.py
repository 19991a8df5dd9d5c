"""Runs one analysis or plot job for the Ambient Sensors MCP sandbox.

Usage: python runner.py <job_dir> <out_dir>
The job folder holds job.json ({"mode": "analyze"|"plot"}), data.csv and code.py.
Writes result.json (status, stdout, stderr, error) and, for plots, plot.png to the out folder.
"""
import io
import json
import os
import re
import sys
import traceback

CAP = 100 * 1024
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


def main():
    job_dir, out_dir = sys.argv[1], sys.argv[2]
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
                fig.savefig(os.path.join(out_dir, "plot.png"), format="png")
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
    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
