"""One measurement: run a program under a configuration and collect time,
memory (Anonymous and Pss from /proc/<pid>/smaps_rollup, never RSS) and the
allocator libraries really mapped into it."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.configs import MAPS_NAME, Config

RUN_TIMEOUT = 900.0
SAMPLE_INTERVAL = 0.02


@dataclasses.dataclass
class Measurement:
    workload: str
    config: str
    rep: int
    time_ns: int | None = None
    peak_anon_kb: int | None = None
    peak_pss_kb: int | None = None
    exit_anon_kb: int | None = None
    exit_pss_kb: int | None = None
    libs: list[str] = dataclasses.field(default_factory=list)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.time_ns is not None

    def value(self, metric: str) -> float | None:
        if metric == "time":
            return self.time_ns
        if metric in ("peak_anon", "peak_pss", "exit_anon", "exit_pss"):
            return getattr(self, metric + "_kb")
        v = self.extra.get(metric)
        return v if isinstance(v, int | float) else None


def _kb(v: Any) -> int | None:
    return int(v) if isinstance(v, int | float) and v >= 0 else None


def check_libs(m: Measurement, config: Config) -> None:
    """The configuration's libraries must really be in the process."""
    expected = [MAPS_NAME[k] for k in config.preload]
    missing = [name for name in expected if name not in m.libs]
    if missing:
        m.error = f"{', '.join(missing)} not loaded in the process (LD_PRELOAD failed?)"
    stray = [n for n in m.libs if n not in expected]
    if stray and m.error is None:
        m.error = f"unexpected allocator library in the process: {', '.join(stray)}"


def run_c(
    m: Measurement, exe: Path, args: tuple[str, ...], env: dict[str, str], config: Config
) -> Measurement:
    try:
        proc = subprocess.run(
            [str(exe), *args], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired:
        m.error = f"timed out after {RUN_TIMEOUT:.0f} s"
        return m
    stderr = proc.stderr.strip()
    if proc.returncode != 0:
        tail = f"; stderr: {stderr[-600:]}" if stderr else ""
        m.error = f"exit status {proc.returncode}{tail}"
        return m
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    try:
        raw: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError) as exc:
        m.error = f"no parsable result ({exc}); stdout: {proc.stdout[-300:]!r}"
        return m
    m.time_ns = int(raw.pop("time_ns"))
    for key in ("peak_anon_kb", "peak_pss_kb", "exit_anon_kb", "exit_pss_kb"):
        setattr(m, key, _kb(raw.pop(key, None)))
    m.libs = list(raw.pop("libs", []))
    loaded = bool(raw.pop("refmalloc", 0))
    m.extra = raw
    if stderr:
        m.warnings.append("stderr: " + stderr[-300:])
    check_libs(m, config)
    if m.error is None and loaded != config.refmalloc:
        m.error = "refmalloc API " + ("missing" if config.refmalloc else "present")
    return m


def _children(pid: int) -> list[int]:
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except OSError:
        pass
    return out


def _rollup(pid: int) -> tuple[int, int] | None:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            text = f.read()
    except OSError:
        return None
    anon = pss = None
    for line in text.splitlines():
        if line.startswith("Anonymous:"):
            anon = int(line.split()[1])
        elif line.startswith("Pss:"):
            pss = int(line.split()[1])
    return (anon, pss) if anon is not None and pss is not None else None


def _libs_of(pid: int) -> set[str]:
    try:
        with open(f"/proc/{pid}/maps") as f:
            text = f.read()
    except OSError:
        return set()
    return {name for name in MAPS_NAME.values() if name in text}


def run_command(
    m: Measurement, cmd: list[str], env: dict[str, str], config: Config, cwd: Path
) -> Measurement:
    """Run a real program; wall time, and the peak of Anonymous and Pss summed
    over its process tree, sampled every 20 ms from /proc/<pid>/smaps_rollup."""
    peak = [0, 0]
    libs: set[str] = set()
    seen: set[int] = set()
    done = threading.Event()

    expected = {MAPS_NAME[k] for k in config.preload}
    with open("/proc/self/cmdline", "rb") as f:
        ours = f.read()

    def sample(root: int) -> None:
        execed = False
        while not done.is_set():
            if not execed:
                # Until the exec, the child is a (v)fork of this Python:
                # its memory and libraries are ours, not the program's.
                try:
                    with open(f"/proc/{root}/cmdline", "rb") as f:
                        line = f.read()
                    # (compared with ours, not with cmd: sqlite3 rewrites its argv)
                    execed = bool(line) and line != ours
                except OSError:
                    pass
                if not execed:
                    done.wait(0.001)
                    continue
            anon = pss = 0
            stack = [root]
            while stack:
                pid = stack.pop()
                r = _rollup(pid)
                if r:
                    anon += r[0]
                    pss += r[1]
                    if pid not in seen or not expected <= libs:
                        seen.add(pid)
                        libs.update(_libs_of(pid))
                stack += _children(pid)
            peak[0], peak[1] = max(peak[0], anon), max(peak[1], pss)
            done.wait(SAMPLE_INTERVAL)

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter_ns()
        try:
            proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=err)
        except OSError as exc:
            m.error = f"cannot run {cmd[0]}: {exc}"
            return m
        sampler = threading.Thread(target=sample, args=(proc.pid,), daemon=True)
        sampler.start()
        try:
            status = proc.wait(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            status = None
        t1 = time.perf_counter_ns()
        done.set()
        sampler.join()
        err.seek(0)
        stderr = err.read().decode(errors="replace").strip()
    if status is None:
        m.error = f"timed out after {RUN_TIMEOUT:.0f} s"
        return m
    if status != 0:
        m.error = f"exit status {status}" + (f"; stderr: {stderr[-600:]}" if stderr else "")
        return m
    m.time_ns = t1 - t0
    m.peak_anon_kb, m.peak_pss_kb = (peak[0] or None), (peak[1] or None)
    m.libs = sorted(libs)
    m.extra = {"processes_sampled": len(seen)}
    if stderr:
        m.warnings.append("stderr: " + stderr[-300:])
    if not seen:
        m.warnings.append("exited before a sample: memory and libraries not seen")
    else:
        check_libs(m, config)
    return m
