"""The plan and the run: every workload under every available configuration,
interleaved (all configurations of a workload back to back, their order
rotated from one repetition to the next), repetitions outermost."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import checkgroup, programs
from bench.configs import BASELINE, BY_NAME, Config, config_env, describe_env, find_peers
from bench.runner import Measurement, run_c, run_command
from bench.workloads import CORPUS_DIR, Workload


@dataclasses.dataclass
class RunResult:
    meta: dict[str, Any]
    configs: list[Config]
    workloads: list[Workload]
    measurements: list[Measurement]
    probes: dict[str, dict[str, Any]]
    skipped: dict[str, str]  # config or workload/config -> why
    load: list[tuple[float, float, float]]


class Progress:
    """A progress bar on stderr (one updating line on a terminal, else a line
    every few percent), with the time left estimated from the time so far."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.done, self.enabled = total, 0, enabled
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_pct = -1

    def step(self, label: str, note: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        frac = self.done / max(1, self.total)
        elapsed = time.monotonic() - self.t0
        eta = elapsed / frac - elapsed if frac > 0 else 0
        bar = "#" * int(frac * 30)
        line = (
            f"[{bar:<30}] {self.done}/{self.total} {elapsed:5.0f}s, ~{eta:4.0f}s left  "
            f"{label} {note}"
        )
        if self.tty:
            sys.stderr.write("\r" + line[:150].ljust(150))
            if self.done == self.total:
                sys.stderr.write("\n")
        elif note.startswith("ERROR") or int(frac * 20) != self.last_pct:
            self.last_pct = int(frac * 20)
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def message(self, text: str) -> None:
        if self.enabled:
            sys.stderr.write(("\n" if self.tty else "") + text + "\n")
            sys.stderr.flush()


def from_json(data: dict[str, Any]) -> RunResult:
    """Rebuild a run from its results.json (to render tables and plots again)."""
    from bench.workloads import build_workloads

    known = {w.name: w for w in build_workloads(False)}
    for w in build_workloads(True):
        known.setdefault(w.name, w)
    names = list(data["meta"]["workloads"])
    if data["meta"].get("quick"):
        quick = {w.name: w for w in build_workloads(True)}
        known.update(quick)
    ms = [Measurement(**m) for m in data["measurements"]]
    load = [tuple(data["meta"]["host"][k]) for k in ("loadavg_start", "loadavg_end")]
    return RunResult(
        data["meta"],
        [BY_NAME[c] for c in data["meta"]["configs"]],
        [known[n] for n in names if n in known],
        ms,
        data["probes"],
        data["skipped"],
        load,  # type: ignore[arg-type]
    )


def host_meta(load: Sequence[tuple[float, float, float]]) -> dict[str, Any]:
    """The machine and its load averages over a run (sampled into `load`)."""
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loadavg_start": list(load[0]),
        "loadavg_end": list(load[-1]),
        "loadavg_max1": max(x[0] for x in load),
    }


def _rotate(seq: Sequence[Any], k: int) -> list[Any]:
    k %= max(1, len(seq))
    return list(seq[k:]) + list(seq[:k])


def available_configs(
    configs: Sequence[Config], lib: Path | None, say: Callable[[str], None]
) -> tuple[list[Config], dict[str, Path], dict[str, str]]:
    peers, missing = find_peers()
    libs: dict[str, Path] = dict(peers)
    if lib is not None:
        libs["refmalloc"] = lib
    else:
        missing["refmalloc"] = "librefmalloc.so not found"
    usable, skipped = [], {}
    for c in configs:
        absent = [k for k in c.preload if k not in libs]
        if absent:
            why = "; ".join(missing.get(k, k) for k in absent)
            skipped[c.name] = why
            say(f"skipping configuration {c.name}: {why}")
        else:
            usable.append(c)
    return usable, libs, skipped


def run(
    workloads: Sequence[Workload],
    configs: Sequence[Config],
    lib: Path | None,
    *,
    reps: int,
    cache: Path | None = None,
    progress: bool = True,
) -> RunResult:
    cache = cache or programs.default_cache_dir()
    bar = Progress(0, progress)
    say = bar.message
    usable, libs, skipped = available_configs(configs, lib, say)
    if not any(c.name == BASELINE for c in usable):
        raise RuntimeError("the baseline configuration (glibc) must be part of the run")
    exes = {
        stem: programs.build(stem, cache)
        for stem in sorted({w.program for w in workloads if w.kind == "c"} | {"probe"})
    }
    programs.real_program_inputs(cache)
    real_ok: dict[str, str | None] = {}
    for kind in sorted({w.kind for w in workloads if w.kind != "c"}):
        tool = {"sqlite3": "sqlite3", "gcc": programs.CC}.get(kind, sys.executable)
        real_ok[kind] = None if shutil.which(tool) else f"{tool} not found"
        if kind == "check" and lib is None:
            real_ok[kind] = "librefmalloc.so not found"
        elif kind == "check" and not (programs.REPO_DIR / "pyalloc" / "check").is_dir():
            real_ok[kind] = "refmalloc check does not exist in this checkout"
        if real_ok[kind]:
            say(f"skipping workload kind {kind}: {real_ok[kind]}")

    plan: list[tuple[int, Workload, Config | str]] = []
    for rep in range(reps):
        for wi, w in enumerate(workloads):
            if w.kind != "c" and real_ok.get(w.kind):
                continue
            if w.kind == "check":
                for mode in _rotate(checkgroup.MODES, rep + wi):
                    why = checkgroup.unavailable(w, mode)
                    if why:
                        skipped[f"{w.name}/{mode}"] = why
                    else:
                        plan.append((rep, w, mode))
                continue
            for c in _rotate(usable, rep + wi):
                if w.skip_eager and c.eager_large:
                    skipped[f"{w.name}/{c.name}"] = (
                        f"memsets every large block whole: would write {w.param('total') >> 30} GiB"
                    )
                    continue
                plan.append((rep, w, c))
    bar.total = len(plan) + len(usable)
    started = time.time()
    load = [os.getloadavg()]

    probes: dict[str, dict[str, Any]] = {}
    for c in usable:
        m = run_c(Measurement("probe", c.name, 0), exes["probe"], (), config_env(c, libs), c)
        probes[c.name] = m.extra if m.ok else {"error": m.error}
        bar.step(f"probe {c.name}", "ERROR " + (m.error or "") if not m.ok else "")

    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="refmalloc-bench-") as scratch:
        for rep, w, c in plan:
            if isinstance(c, str):  # a mode of the check group
                m = Measurement(w.name, c, rep)
                prog, python = programs.check_program(
                    w.program, w.args, cache, Path(scratch), CORPUS_DIR
                )
                env = config_env(BY_NAME[BASELINE], libs)
                env.update(PYTHONPATH=str(programs.REPO_DIR), REFMALLOC_LIB=str(lib))
                # An installed pyalloc has its bytecode compiled; without it every check
                # would compile some 40 modules first (~30 ms here), which is not its cost.
                env.pop("PYTHONDONTWRITEBYTECODE", None)
                checkgroup.measure(m, c, prog, python, env, Path(scratch))
                measurements.append(m)
                note = f"ERROR {m.error}" if m.error else f"{(m.time_ns or 0) / 1e6:.1f} ms"
                bar.step(f"{w.name} {c} rep {rep + 1}/{reps}", note)
                continue
            m = Measurement(w.name, c.name, rep)
            env = config_env(c, libs)
            if w.kind == "c":
                run_c(m, exes[w.program], w.args, env, c)
            else:
                cmd, extra_env = programs.real_command(w.kind, w.args[0], cache, Path(scratch))
                env.update(extra_env)
                run_command(m, cmd, env, c, Path(scratch))
            measurements.append(m)
            note = f"ERROR {m.error}" if m.error else f"{(m.time_ns or 0) / 1e6:.1f} ms"
            bar.step(f"{w.name} {c.name} rep {rep + 1}/{reps}", note)
            if bar.done % 50 == 0:
                load.append(os.getloadavg())
    load.append(os.getloadavg())
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "reps": reps,
        "lib": str(lib) if lib else None,
        "lib_sha256": hashlib.sha256(lib.read_bytes()).hexdigest() if lib else None,
        "libs": {k: str(v) for k, v in libs.items()},
        "configs": {c.name: {"description": c.description, "env": describe_env(c)} for c in usable},
        "workloads": {w.name: w.description for w in workloads},
        "cache_dir": str(cache),
        "compiler": programs.compiler_id(),
        "host": host_meta(load),
    }
    return RunResult(meta, usable, list(workloads), measurements, probes, skipped, load)
