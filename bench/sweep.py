"""The threshold sweep (``python -m bench --sweep``): for block sizes around
the default threshold, refmalloc's reference-page path against its small path
(next allocator + memset), to support the choice of the threshold.

Every size runs bench/programs/sweep.c under three configurations:

* ``glibc``   -- no preload, for scale;
* ``small``   -- refmalloc with ``threshold=1g``: the swept block comes from
  the next allocator and is filled with the pattern;
* ``refpage`` -- refmalloc with ``threshold=<size>``: only the swept block
  (nothing smaller) is built from reference pages.

Two modes: ``reuse`` mallocs a block, writes 10% of its pages and frees it,
over and over (the freed block comes back every time); ``live`` keeps the
blocks live (fresh memory every time, up to a byte budget) and shows the
anonymous memory as well. Repetitions are outermost and the configuration
order rotates from one repetition to the next, as in the suite. Each run is
checked: refmalloc's counters must show the swept blocks on the path the
configuration names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import statistics
import time
from pathlib import Path
from typing import Any

from bench import programs
from bench.configs import BY_NAME, Config, config_env, describe_env
from bench.report import _num, _table
from bench.runner import Measurement, run_c
from bench.suite import Progress, host_meta
from bench.workloads import KiB, MiB, _size

MODES = ("reuse", "live")
SIZES = tuple(k * KiB for k in (16, 32, 64, 128, 256, 512, 1024))
QUICK_SIZES = (16 * KiB, 64 * KiB, 256 * KiB, MiB)
SMALL_THRESHOLD = "1g"  # above every swept size: next allocator + memset
CONFIG_NAMES = ("glibc", "small", "refpage")

MODE_TEXT = {
    "reuse": "malloc, write 10% of the pages, free, repeated (the freed block comes back)",
    "live": "malloc, write 10% of the pages, all blocks kept live, then freed",
}


@dataclasses.dataclass(frozen=True)
class Plan:
    sizes: tuple[int, ...]
    iterations: int  # per run; live mode: at most live_budget bytes
    live_budget: int

    def count(self, mode: str, size: int) -> int:
        if mode == "live":
            return max(16, min(self.iterations, self.live_budget // size))
        return self.iterations


FULL = Plan(SIZES, 2000, 256 * MiB)
QUICK = Plan(QUICK_SIZES, 200, 64 * MiB)
# live mode keeps one pointer per block in a single malloc: it stays below
# every swept threshold, so the swept blocks are the only large ones.
assert FULL.iterations * 8 < min(SIZES + QUICK_SIZES)


def configs(size: int) -> dict[str, Config]:
    """The three configurations for blocks of `size` bytes."""
    return {
        "glibc": BY_NAME["glibc"],
        "small": Config(
            "small",
            f"refmalloc, threshold={SMALL_THRESHOLD}: next allocator + memset",
            preload=("refmalloc",),
            env=(("REFMALLOC_OPTIONS", f"threshold={SMALL_THRESHOLD}"),),
            pattern=True,
        ),
        "refpage": Config(
            "refpage",
            "refmalloc, threshold=<size>: reference pages",
            preload=("refmalloc",),
            env=(("REFMALLOC_OPTIONS", f"threshold={size}"),),
            pattern=True,
        ),
    }


def check_path(m: Measurement, count: int) -> None:
    """The swept blocks took the path of m.config (refmalloc's counters)."""
    stats = m.extra.get("rm_stats")
    if m.error or m.config == "glibc" or not isinstance(stats, dict):
        return
    large = stats["refpage_allocs"] + stats["eager_allocs"]  # reused blocks are refpage ones
    if m.config == "small" and large:
        m.error = f"{large} large block(s) where the threshold should send every block small"
    elif m.config == "refpage" and (stats["eager_allocs"] or large < count):
        m.error = (
            f"{stats['refpage_allocs']} reference-page block(s), {stats['cache_hits']} "
            f"reused, {stats['eager_allocs']} eager, for {count} swept blocks"
        )


@dataclasses.dataclass
class SweepResult:
    meta: dict[str, Any]
    plan: Plan
    measurements: list[Measurement]

    def median(self, mode: str, size: int, config: str, metric: str) -> float | None:
        vals = [
            m.value(metric)
            for m in self.measurements
            if m.ok and m.config == config and m.workload == workload_name(mode, size)
        ]
        vals = [v for v in vals if v is not None]
        return statistics.median(vals) if vals else None

    def ratio(self, mode: str, size: int) -> float | None:
        """refpage time / small time (below 1: reference pages are faster)."""
        r = self.median(mode, size, "refpage", "time")
        s = self.median(mode, size, "small", "time")
        return r / s if r is not None and s else None

    def crossover(self, mode: str) -> int | None:
        """Smallest swept size from which the refpage path is faster for that
        size and every larger one; None if it is not faster at the largest."""
        best = None
        for size in reversed(self.plan.sizes):
            r = self.ratio(mode, size)
            if r is None or r >= 1.0:
                break
            best = size
        return best


def workload_name(mode: str, size: int) -> str:
    return f"sweep-{mode}-{_size(size)}"


def run(
    lib: Path, *, quick: bool, reps: int, cache: Path | None = None, progress: bool = True
) -> SweepResult:
    plan = QUICK if quick else FULL
    cache = cache or programs.default_cache_dir()
    exe = programs.build("sweep", cache)
    libs = {"refmalloc": lib}
    runs = [
        (rep, mode, size, name)
        for rep in range(reps)
        for mode in MODES
        for i, size in enumerate(plan.sizes)
        for name in CONFIG_NAMES[(rep + i) % 3 :] + CONFIG_NAMES[: (rep + i) % 3]
    ]
    bar = Progress(len(runs), progress)
    started = time.time()
    load = [os.getloadavg()]
    measurements = []
    for rep, mode, size, name in runs:
        config = configs(size)[name]
        count = plan.count(mode, size)
        m = Measurement(workload_name(mode, size), name, rep)
        run_c(m, exe, (str(size), str(count), mode), config_env(config, libs), config)
        check_path(m, count)
        measurements.append(m)
        note = f"ERROR {m.error}" if m.error else f"{(m.time_ns or 0) / 1e6:.1f} ms"
        bar.step(f"{m.workload} {name} rep {rep + 1}/{reps}", note)
    load.append(os.getloadavg())
    sample = configs(plan.sizes[0])
    meta = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 1),
        "reps": reps,
        "quick": quick,
        "lib": str(lib),
        "lib_sha256": hashlib.sha256(lib.read_bytes()).hexdigest(),
        "configs": {
            n: {"description": c.description, "env": describe_env(c)} for n, c in sample.items()
        },
        "plan": dataclasses.asdict(plan),
        "cache_dir": str(cache),
        "compiler": programs.compiler_id(),
        "host": host_meta(load),
    }
    return SweepResult(meta, plan, measurements)


def _ms(v: float | None) -> str:
    return "-" if v is None else _num(v / 1e6)


def _mib(v: float | None) -> str:
    return "-" if v is None else f"{v / 1024:.1f}"


def render(result: SweepResult, command: str) -> str:
    meta, host = result.meta, result.meta["host"]
    out = [
        f"Command: `{command}` — threshold sweep, {meta['reps']} repetition(s), medians; "
        f"{meta['duration_s']:.0f} s; {host['cpus']} CPUs, load average "
        f"{host['loadavg_start'][0]:.2f} at start, {host['loadavg_end'][0]:.2f} at end.",
        "",
        "Configurations: glibc = no preload; small = refmalloc, "
        f"REFMALLOC_OPTIONS=threshold={SMALL_THRESHOLD} (next allocator + memset); "
        "refpage = refmalloc, REFMALLOC_OPTIONS=threshold=<size> (reference pages).",
    ]
    for mode in MODES:
        rows = []
        for size in result.plan.sizes:
            med = {c: result.median(mode, size, c, "time") for c in CONFIG_NAMES}
            anon = {c: result.median(mode, size, c, "peak_anon") for c in CONFIG_NAMES}
            ratio = result.ratio(mode, size)
            rows.append(
                [
                    _size(size),
                    str(result.plan.count(mode, size)),
                    *(_ms(med[c]) for c in CONFIG_NAMES),
                    "-" if ratio is None else f"{ratio:.2f}",
                    " / ".join(_mib(anon[c]) for c in CONFIG_NAMES),
                    "-" if ratio is None else ("refpage" if ratio < 1 else "small"),
                ]
            )
        out += ["", f"{mode}: {MODE_TEXT[mode]}; total time:", ""]
        out += _table(
            [
                "size",
                "blocks",
                "glibc ms",
                "small ms",
                "refpage ms",
                "refpage / small",
                "peak anon MiB glibc / small / refpage",
                "faster",
            ],
            rows,
        )
        cross = result.crossover(mode)
        largest = _size(result.plan.sizes[-1])
        out += [
            "",
            f"Crossover ({mode}): "
            + (
                f"reference pages are not faster at {largest}"
                if cross is None
                else f"reference pages faster from {_size(cross)} up "
                f"(time alone supports threshold={_size(cross)})"
            ),
        ]
    errors = [m for m in result.measurements if m.error]
    if errors:
        out += ["", f"{len(errors)} measurement(s) failed:"]
        out += [f"- {m.workload} / {m.config}: {m.error[:200]}" for m in errors[:20]]
    return "\n".join(out) + "\n"


def to_json(result: SweepResult) -> dict[str, Any]:
    return {
        "meta": result.meta,
        "summary": {
            mode: [
                {
                    "size": size,
                    "blocks": result.plan.count(mode, size),
                    "time_ns": {c: result.median(mode, size, c, "time") for c in CONFIG_NAMES},
                    "peak_anon_kb": {
                        c: result.median(mode, size, c, "peak_anon") for c in CONFIG_NAMES
                    },
                    "refpage_over_small": result.ratio(mode, size),
                }
                for size in result.plan.sizes
            ]
            for mode in MODES
        },
        "crossover": {mode: result.crossover(mode) for mode in MODES},
        "measurements": [dataclasses.asdict(m) for m in result.measurements],
    }
