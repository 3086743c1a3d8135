"""The check group: what `refmalloc check` costs, program by program, against one plain
run, one `refmalloc run`, `check --no-reads` and Valgrind memcheck, all measured
interleaved in the same run (issue 13: goal check <= 3.5x one plain run, wall time).

Its rows are programs (the read corpus of tests/check_corpus, the sqlite3 workload, a
numpy script); its columns are modes, stored as the configurations of the rows'
measurements, so medians, ratios (to ``glibc``: the plain run), results.json, --compare
and --from-json work as for the rest of the suite. Each measurement also keeps the
verdict: check's exit status and findings, memcheck's error count.
"""

from __future__ import annotations

import importlib.util
import json
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.configs import BASELINE
from bench.runner import RUN_TIMEOUT, Measurement
from bench.workloads import Workload

#: The columns, in table order; BASELINE is the plain run (no preload: glibc).
MODES = ("glibc", "rm-run", "check", "check-noreads", "memcheck")
MODE_TEXT = {
    "glibc": "one plain run, no preload",
    "rm-run": "refmalloc run -- PROG (one run under the library)",
    "check": "refmalloc check --json -- PROG (with reads)",
    "check-noreads": "refmalloc check --json --no-reads -- PROG",
    "memcheck": "valgrind --tool=memcheck --track-origins=no -q --error-exitcode=99 PROG",
}
#: The issue's goal for check against one plain run (wall time).
CHECK_GOAL = 3.5
VALGRIND_EXIT = 99
#: The headline line of one memcheck error ("==PID== Invalid read ..."), not its stack.
_VG_ERROR = re.compile(rb"^==\d+== \S", re.M)


def unavailable(w: Workload, mode: str) -> str | None:
    """Why this row cannot run in this mode here (None: it can)."""
    if mode == "memcheck" and not shutil.which("valgrind"):
        return "valgrind not found (Debian package valgrind)"
    if w.program == "sqlite3" and not shutil.which("sqlite3"):
        return "sqlite3 not found (Debian package sqlite3)"
    if "numpy" in w.program and importlib.util.find_spec("numpy") is None:
        return "numpy is not installed"
    return None


def command(
    mode: str, prog: list[str], python: bool, log: Path
) -> tuple[list[str], dict[str, str]]:
    """Command line and extra environment of one mode around the program's argv."""
    cli = [sys.executable, "-m", "pyalloc"]
    if mode == BASELINE:
        return prog, {}
    if mode == "rm-run":
        return [*cli, "run", "--", *prog], {}
    if mode == "check":
        return [*cli, "check", "--json", "-q", "--", *prog], {}
    if mode == "check-noreads":
        return [*cli, "check", "--json", "-q", "--no-reads", "--", *prog], {}
    if mode == "memcheck":
        vg = ["valgrind", "--tool=memcheck", "--track-origins=no", "-q"]
        vg += [f"--error-exitcode={VALGRIND_EXIT}", f"--log-file={log}"]
        # pymalloc's arenas look uninitialized to memcheck: Python runs with malloc.
        return [*vg, *prog], ({"PYTHONMALLOC": "malloc"} if python else {})
    raise ValueError(f"unknown check mode {mode!r}")


def measure(
    m: Measurement, mode: str, prog: list[str], python: bool, env: dict[str, str], scratch: Path
) -> Measurement:
    """Wall and CPU time of one mode, and what it found (kept in m.extra)."""
    log = scratch / f"memcheck-{m.workload}-{m.rep}.log"
    cmd, extra = command(mode, prog, python, log)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter_ns()
    try:
        proc = subprocess.run(
            cmd, env={**env, **extra}, cwd=scratch, capture_output=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        m.error = f"timed out after {RUN_TIMEOUT:.0f} s"
        return m
    except OSError as exc:
        m.error = f"cannot run {cmd[0]}: {exc}"
        return m
    t1 = time.perf_counter_ns()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    m.extra = {"cpu_ns": int(cpu * 1e9), "exit": proc.returncode}
    stderr = proc.stderr.decode(errors="replace").strip()
    if mode.startswith("check"):
        if proc.returncode not in (0, 1, 3):
            m.error = f"check exit status {proc.returncode}; stderr: {stderr[-400:]}"
            return m
        m.extra.update(_check_findings(proc.stdout))
    elif mode == "memcheck":
        text = log.read_bytes() if log.is_file() else b""
        m.extra["vg_errors"] = len(_VG_ERROR.findall(text))
        if proc.returncode not in (0, VALGRIND_EXIT):
            m.error = f"valgrind exit status {proc.returncode}; {text[-300:]!r}"
            return m
        m.extra["found"] = int(proc.returncode == VALGRIND_EXIT)
    elif proc.returncode != 0:
        m.error = f"exit status {proc.returncode}; stderr: {stderr[-400:]}"
        return m
    m.time_ns = t1 - t0
    return m


def _check_findings(stdout: bytes) -> dict[str, object]:
    """check's verdict, its read-before-write count and each run's seconds."""
    try:
        data = json.loads(stdout)
    except json.JSONDecodeError:
        return {"verdict_exit": None}
    reads = data.get("reads") or {}
    findings = [f for f in data.get("findings", []) if f.get("kind") == "read-before-write"]
    out: dict[str, object] = {
        "verdict_exit": data.get("exit_code"),
        "found": int(data.get("verdict") == "dependence"),
        "read_findings": len(findings),
        "reads_tracked": int(bool(reads.get("tracked"))),
        "check_seconds": data.get("seconds"),
    }
    for run in data.get("runs", []):
        label, seconds = run.get("label"), run.get("seconds")
        if isinstance(label, str) and isinstance(seconds, int | float):
            out[f"run_{label}_s"] = seconds
    return out


def expected(w: Workload) -> str | None:
    """The row's expectation: "reads" (check must find a read), "clean", or None."""
    return w.param("expect")
