"""Core benchmark of refmalloc against glibc, in one run.

Usage::

    python bench/core.py [--quick] [--json OUT] [--lib PATH]

Compiles the C workloads in bench/workloads/ with ``gcc -O2`` into a cache
directory, then runs every workload under three configurations, interleaved
(repetition by repetition, with the configuration order rotated):

* ``glibc``      -- no preload, the baseline every ratio refers to;
* ``perturb``    -- glibc with ``MALLOC_PERTURB_=170``;
* ``refmalloc``  -- ``LD_PRELOAD=<lib>``, default options.

Each workload program times its own work with ``clock_gettime`` and samples
``Anonymous:`` and ``Pss:`` from ``/proc/self/smaps_rollup`` (never RSS), and
prints one JSON object. The script keeps the median over the repetitions
(default 5, ``--quick`` 2) and prints a table of absolute values and ratios
against glibc measured in the same run, with the goals of the issue next to
the sparse and dense rows. A threshold sweep then compares, for block sizes
from 16 KiB to 1 MiB, refmalloc's reference-page path with its small path
(next allocator + memset) to support the choice of the default threshold:
"reuse" mallocs, writes 10% of the pages and frees one block 2000 times (the
freed block comes back every time), "live" keeps the blocks live (fresh
memory each time, up to 256 MiB) and shows the anonymous memory as well.

The module is importable: :func:`run_suite` returns a :class:`SuiteResult`,
:func:`format_report` renders it, :func:`find_lib` resolves the library.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import importlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
WORKLOAD_DIR = BENCH_DIR / "workloads"
INCLUDE_DIR = BENCH_DIR.parent / "allocator" / "include"
DEFAULT_LIB = REPO_DIR / "build" / "librefmalloc.so"

PATTERN = 170  # refmalloc's default pattern byte (0xAA)
PERTURB = 170  # MALLOC_PERTURB_ value; glibc fills fresh blocks with ~170 = 85
CC = "gcc"
CFLAGS = ("-O2", "-Wall", "-Wextra")
LDLIBS = ("-ldl",)
RUN_TIMEOUT = 600.0

# Variables that change how either allocator behaves: removed from the
# environment of every run so each configuration sets exactly what it means.
SCRUBBED_ENV = (
    "LD_PRELOAD",
    "MALLOC_PERTURB_",
    "REFMALLOC_OPTIONS",
    "GLIBC_TUNABLES",
    "MALLOC_CHECK_",
    "MALLOC_ARENA_MAX",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_MAX_",
)

CONFIGS = ("glibc", "perturb", "refmalloc")
BASELINE = "glibc"

SWEEP_SIZES = (16 << 10, 32 << 10, 64 << 10, 128 << 10, 256 << 10, 512 << 10, 1 << 20)
SWEEP_ITERATIONS = 2000
# reuse: malloc + write 10% + free, SWEEP_ITERATIONS times (the brief's sweep).
# live: the blocks stay live until the end (fresh memory every time, no reuse),
#       as many as fit in SWEEP_LIVE_BUDGET bytes (at most SWEEP_ITERATIONS).
SWEEP_MODES = ("reuse", "live")
SWEEP_LIVE_BUDGET = 256 << 20
SWEEP_CONFIGS = ("glibc", "small", "refpage")
SWEEP_SMALL_THRESHOLD = "1g"  # every swept size is below it: next allocator + memset


@dataclasses.dataclass(frozen=True)
class Goal:
    """Upper bounds on refmalloc's ratios against glibc without pattern."""

    time: float | None = None
    anon: float | None = None

    def describe(self) -> str:
        parts = []
        if self.time is not None:
            parts.append(f"time <={self.time:g}x")
        if self.anon is not None:
            parts.append(f"anon <={self.anon:g}x")
        return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    source: str  # file name in bench/workloads/
    args: tuple[str, ...] = ()
    goal: Goal | None = None
    # Byte a never-written page must read as, per configuration (sanity check).
    expect_unwritten: dict[str, int] | None = None
    description: str = ""


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "sparse",
        "sparse.c",
        goal=Goal(time=1.2, anon=1.05),
        expect_unwritten={"glibc": 0, "perturb": PERTURB ^ 0xFF, "refmalloc": PATTERN},
        description="4 x 256 MiB, 1% of pages written, 1 byte of every page read",
    ),
    Workload(
        "dense",
        "dense.c",
        goal=Goal(time=1.1),
        description="8 x (malloc 64 MiB, memset whole, free)",
    ),
    Workload(
        "dense-reuse", "dense_reuse.c", description="200 x (malloc 4 MiB, memset whole, free)"
    ),
    Workload("churn", "churn.c", description="2M malloc/free, 8..2048 bytes, 1000 live slots"),
)
SWEEP_SOURCE = "sweep.c"


class BenchError(RuntimeError):
    """A workload could not be built or run, or printed nonsense."""


class LibNotFoundError(BenchError, FileNotFoundError):
    """librefmalloc.so is not where it was looked for."""


# --------------------------------------------------------------------------
# Library and workload programs


def find_lib(cli_path: str | None = None) -> Path:
    """Resolve librefmalloc.so: --lib, else $REFMALLOC_LIB, else
    pyalloc.lib_path() when pyalloc is importable, else <repo>/build/."""
    if cli_path:
        path, origin = Path(cli_path), "--lib"
    elif os.environ.get("REFMALLOC_LIB"):
        path, origin = Path(os.environ["REFMALLOC_LIB"]), "REFMALLOC_LIB"
    else:
        path, origin = DEFAULT_LIB, "default location"
        try:
            pyalloc = importlib.import_module("pyalloc")
            path, origin = Path(pyalloc.lib_path()), "pyalloc.lib_path()"
        except (ImportError, AttributeError, FileNotFoundError):
            pass
    if not path.is_file():
        raise LibNotFoundError(
            f"refmalloc library not found: {path} (from {origin}). Build it with "
            f"'cmake -S {REPO_DIR} -B {REPO_DIR / 'build'} && cmake --build "
            f"{REPO_DIR / 'build'}', or pass --lib PATH, or set REFMALLOC_LIB."
        )
    return path.resolve()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "refmalloc-bench"


def _compiler_id() -> str:
    try:
        out = subprocess.run([CC, "--version"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchError(f"cannot run {CC}: {exc}") from exc
    return out.stdout.splitlines()[0] if out.stdout else CC


def build_program(source: str, cache_dir: Path) -> Path:
    """Compile bench/workloads/<source> (gcc -O2) into cache_dir, once per
    content of the source, its headers, flags and compiler version."""
    src = WORKLOAD_DIR / source
    if not src.is_file():
        raise BenchError(f"workload source missing: {src}")
    digest = hashlib.sha256()
    for part in (_compiler_id(), " ".join(CFLAGS + LDLIBS)):
        digest.update(part.encode())
    for dep in (src, WORKLOAD_DIR / "common.h", BENCH_DIR / "programs" / "bench.h"):
        digest.update(dep.read_bytes())
    exe = cache_dir / f"{src.stem}-{digest.hexdigest()[:16]}"
    if exe.is_file() and os.access(exe, os.X_OK):
        return exe
    cache_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{src.stem}-", dir=cache_dir)
    os.close(fd)
    cmd = [
        CC,
        *CFLAGS,
        "-I",
        str(WORKLOAD_DIR),
        "-I",
        str(INCLUDE_DIR),
        "-o",
        tmp_name,
        str(src),
        *LDLIBS,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        Path(tmp_name).unlink(missing_ok=True)
        raise BenchError(f"compiling {src} failed:\n$ {' '.join(cmd)}\n{proc.stderr}")
    os.replace(tmp_name, exe)  # atomic: concurrent runs never see half a binary
    return exe


def build_all(cache_dir: Path) -> dict[str, Path]:
    sources = {w.source for w in WORKLOADS} | {SWEEP_SOURCE}
    return {s: build_program(s, cache_dir) for s in sorted(sources)}


# --------------------------------------------------------------------------
# Running one measurement


def config_env(
    lib: Path | None, *, preload: bool, perturb: int | None = None, options: str | None = None
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUBBED_ENV}
    if preload:
        if lib is None:
            raise BenchError("a refmalloc configuration needs the library path")
        env["LD_PRELOAD"] = str(lib)
        if options:
            env["REFMALLOC_OPTIONS"] = options
    if perturb is not None:
        env["MALLOC_PERTURB_"] = str(perturb)
    return env


def env_for(config: str, lib: Path | None, size: int | None = None) -> dict[str, str]:
    """Environment of a named configuration (main table or sweep)."""
    if config == "glibc":
        return config_env(None, preload=False)
    if config == "perturb":
        return config_env(None, preload=False, perturb=PERTURB)
    if config == "refmalloc":
        return config_env(lib, preload=True)
    if config == "small":
        return config_env(lib, preload=True, options=f"threshold={SWEEP_SMALL_THRESHOLD}")
    if config == "refpage":
        if size is None:
            raise BenchError("the refpage sweep configuration needs a size")
        # threshold = the size itself: only the swept block takes the refpage path.
        return config_env(lib, preload=True, options=f"threshold={size}")
    raise BenchError(f"unknown configuration {config!r}")


@dataclasses.dataclass
class Measurement:
    workload: str
    config: str
    rep: int
    time_ns: int | None = None
    anon_kb: int | None = None
    pss_kb: int | None = None
    size: int | None = None  # sweep only
    raw: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and self.time_ns is not None


def run_program(
    exe: Path, args: Sequence[str], env: dict[str, str], expect_refmalloc: bool
) -> dict[str, Any]:
    """Run one workload process; return its JSON result or raise BenchError."""
    try:
        proc = subprocess.run(
            [str(exe), *args], env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {RUN_TIMEOUT:.0f} s") from exc
    stderr = proc.stderr.strip()
    if proc.returncode != 0:
        raise BenchError(
            f"exit status {proc.returncode}" + (f"; stderr: {stderr[-800:]}" if stderr else "")
        )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        raise BenchError(f"no result printed; stdout: {proc.stdout[-400:]!r}")
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise BenchError(f"unparsable result {lines[-1]!r}: {exc}") from exc
    loaded = bool(result.get("refmalloc"))
    if loaded != expect_refmalloc:
        raise BenchError(
            (
                "refmalloc was not loaded (LD_PRELOAD failed?)"
                if expect_refmalloc
                else "refmalloc is loaded where it should not be"
            )
            + (f"; stderr: {stderr[-800:]}" if stderr else "")
        )
    if stderr:
        result["stderr"] = stderr[-2000:]
    return result


def measure(
    workload: str,
    config: str,
    rep: int,
    exe: Path,
    args: Sequence[str],
    env: dict[str, str],
    expect_refmalloc: bool,
    size: int | None = None,
    expect_unwritten: int | None = None,
) -> Measurement:
    m = Measurement(workload=workload, config=config, rep=rep, size=size)
    try:
        raw = run_program(exe, args, env, expect_refmalloc)
    except BenchError as exc:
        m.error = str(exc)
        return m
    m.raw = raw
    m.time_ns = int(raw["time_ns"])
    m.anon_kb = int(raw["anon_kb"]) if raw.get("anon_kb", -1) >= 0 else None
    m.pss_kb = int(raw["pss_kb"]) if raw.get("pss_kb", -1) >= 0 else None
    if expect_unwritten is not None and raw.get("unwritten_byte") != expect_unwritten:
        m.warnings.append(
            f"a never-written byte reads {raw.get('unwritten_byte')}, expected {expect_unwritten}"
        )
    if "stderr" in raw:
        m.warnings.append(f"stderr: {raw['stderr'][:300]}")
    return m


# --------------------------------------------------------------------------
# Aggregation


@dataclasses.dataclass
class Stat:
    median: float
    low: float
    high: float
    n: int

    @property
    def spread(self) -> float:
        """(max - min) / median: the noise seen across repetitions."""
        return (self.high - self.low) / self.median if self.median else 0.0


def stat_of(values: Iterable[float | int | None]) -> Stat | None:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None
    return Stat(statistics.median(vals), min(vals), max(vals), len(vals))


def _ratio(a: Stat | None, b: Stat | None) -> float | None:
    if a is None or b is None or b.median <= 0:
        return None
    return a.median / b.median


@dataclasses.dataclass
class Row:
    workload: str
    config: str
    time_ns: Stat | None
    anon_kb: Stat | None
    pss_kb: Stat | None
    time_ratio: float | None
    anon_ratio: float | None
    errors: list[str]
    goal: Goal | None = None
    goal_met: bool | None = None


def sweep_iterations(mode: str, size: int) -> int:
    if mode == "live":
        return max(16, min(SWEEP_ITERATIONS, SWEEP_LIVE_BUDGET // size))
    return SWEEP_ITERATIONS


@dataclasses.dataclass
class SweepRow:
    mode: str
    size: int
    iterations: int
    time_ns: dict[str, Stat | None]
    anon_kb: dict[str, Stat | None]

    def ratio(self) -> float | None:
        """refpage path time / small path time (< 1: refpage is faster)."""
        return _ratio(self.time_ns.get("refpage"), self.time_ns.get("small"))


@dataclasses.dataclass
class SuiteResult:
    meta: dict[str, Any]
    measurements: list[Measurement]
    rows: list[Row]
    sweep: list[SweepRow]
    crossover: dict[str, int | None]

    @property
    def failed(self) -> bool:
        return any(m.error for m in self.measurements)

    def to_json(self) -> dict[str, Any]:
        def stat(s: Stat | None) -> dict[str, Any] | None:
            return None if s is None else {**dataclasses.asdict(s), "spread": s.spread}

        return {
            "meta": self.meta,
            "measurements": [dataclasses.asdict(m) for m in self.measurements],
            "summary": [
                {
                    "workload": r.workload,
                    "config": r.config,
                    "time_ns": stat(r.time_ns),
                    "anon_kb": stat(r.anon_kb),
                    "pss_kb": stat(r.pss_kb),
                    "time_ratio": r.time_ratio,
                    "anon_ratio": r.anon_ratio,
                    "goal": None if r.goal is None else dataclasses.asdict(r.goal),
                    "goal_met": r.goal_met,
                    "errors": r.errors,
                }
                for r in self.rows
            ],
            "sweep": {
                "small_threshold": SWEEP_SMALL_THRESHOLD,
                "live_budget": SWEEP_LIVE_BUDGET,
                "rows": [
                    {
                        "mode": s.mode,
                        "size": s.size,
                        "iterations": s.iterations,
                        "time_ns": {c: stat(v) for c, v in s.time_ns.items()},
                        "anon_kb": {c: stat(v) for c, v in s.anon_kb.items()},
                        "refpage_over_small": s.ratio(),
                    }
                    for s in self.sweep
                ],
                "crossover": self.crossover,
            },
        }


def summarize(measurements: Sequence[Measurement], workloads: Sequence[Workload]) -> list[Row]:
    rows: list[Row] = []
    for w in workloads:
        per: dict[str, list[Measurement]] = {
            c: [
                m for m in measurements if m.workload == w.name and m.config == c and m.size is None
            ]
            for c in CONFIGS
        }
        stats = {
            c: (
                stat_of(m.time_ns for m in ms if m.ok),
                stat_of(m.anon_kb for m in ms if m.ok),
                stat_of(m.pss_kb for m in ms if m.ok),
            )
            for c, ms in per.items()
        }
        base_t, base_a, _ = stats[BASELINE]
        for c in CONFIGS:
            t, a, p = stats[c]
            row = Row(
                w.name,
                c,
                t,
                a,
                p,
                _ratio(t, base_t),
                _ratio(a, base_a),
                [m.error for m in per[c] if m.error],
            )
            if c == "refmalloc" and w.goal is not None:
                row.goal = w.goal
                checks = []
                if w.goal.time is not None and row.time_ratio is not None:
                    checks.append(row.time_ratio <= w.goal.time)
                if w.goal.anon is not None and row.anon_ratio is not None:
                    checks.append(row.anon_ratio <= w.goal.anon)
                row.goal_met = all(checks) if checks else None
            rows.append(row)
    return rows


def summarize_sweep(
    measurements: Sequence[Measurement], sizes: Sequence[int], modes: Sequence[str]
) -> tuple[list[SweepRow], dict[str, int | None]]:
    rows: list[SweepRow] = []
    cross: dict[str, int | None] = {}
    for mode in modes:
        mode_rows = []
        for size in sizes:
            sel = {
                c: [
                    m
                    for m in measurements
                    if m.workload == f"sweep-{mode}" and m.size == size and m.config == c and m.ok
                ]
                for c in SWEEP_CONFIGS
            }
            mode_rows.append(
                SweepRow(
                    mode,
                    size,
                    sweep_iterations(mode, size),
                    {c: stat_of(m.time_ns for m in ms) for c, ms in sel.items()},
                    {c: stat_of(m.anon_kb for m in ms) for c, ms in sel.items()},
                )
            )
        rows += mode_rows
        cross[mode] = crossover(mode_rows)
    return rows, cross


def crossover(rows: Sequence[SweepRow]) -> int | None:
    """Smallest swept size from which the refpage path is faster than the
    small path for that size and every larger one; None if never."""
    best: int | None = None
    for row in reversed(rows):
        r = row.ratio()
        if r is None or r >= 1.0:
            break
        best = row.size
    return best


# --------------------------------------------------------------------------
# The suite


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _fmt_size(n: int) -> str:
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


def _rotate(seq: Sequence[str], k: int) -> list[str]:
    k %= len(seq)
    return list(seq[k:]) + list(seq[:k])


def run_suite(
    lib: Path,
    *,
    reps: int = 5,
    cache_dir: Path | None = None,
    workloads: Sequence[Workload] = WORKLOADS,
    sweep: bool = True,
    sweep_sizes: Sequence[int] = SWEEP_SIZES,
    sweep_modes: Sequence[str] = SWEEP_MODES,
    progress: Callable[[str], None] | None = _log,
) -> SuiteResult:
    """Build the workloads and measure everything, interleaved by repetition."""
    if reps < 1:
        raise BenchError("reps must be at least 1")
    say = progress or (lambda _msg: None)
    cache = cache_dir or default_cache_dir()
    programs = build_all(cache)
    started = time.time()
    # (rep, workload, config, size, sweep mode): all configurations of one
    # workload back to back, their order rotated from one repetition to the next.
    plan: list[tuple[int, str, str, int | None, str]] = []
    for rep in range(reps):
        for w in workloads:
            plan += [(rep, w.name, c, None, "") for c in _rotate(CONFIGS, rep)]
        if sweep:
            for mode in sweep_modes:
                for size in sweep_sizes:
                    plan += [
                        (rep, f"sweep-{mode}", c, size, mode) for c in _rotate(SWEEP_CONFIGS, rep)
                    ]
    by_name = {w.name: w for w in workloads}
    measurements: list[Measurement] = []
    for i, (rep_i, name, config, block, mode) in enumerate(plan, 1):
        if block is None:
            w = by_name[name]
            exp = w.expect_unwritten.get(config) if w.expect_unwritten else None
            m = measure(
                name,
                config,
                rep_i,
                programs[w.source],
                w.args,
                env_for(config, lib),
                config == "refmalloc",
                expect_unwritten=exp,
            )
            label = f"{name:<11} {config:<9}"
        else:
            m = measure(
                name,
                config,
                rep_i,
                programs[SWEEP_SOURCE],
                (str(block), str(sweep_iterations(mode, block)), mode),
                env_for(config, lib, block),
                config != "glibc",
                size=block,
            )
            label = f"sweep-{mode:<5} {_fmt_size(block):>4} {config:<9}"
        measurements.append(m)
        head = f"[{i}/{len(plan)}] {label} rep {rep_i + 1}/{reps}:"
        if m.error:
            say(f"{head} ERROR {m.error}")
            continue
        anon = f" anon {m.anon_kb / 1024:.1f} MiB" if m.anon_kb is not None else ""
        pss = f" pss {m.pss_kb / 1024:.1f} MiB" if m.pss_kb is not None else ""
        say(
            f"{head} {(m.time_ns or 0) / 1e6:.2f} ms{anon}{pss}"
            + "".join(f" [warning: {x}]" for x in m.warnings)
        )
    meta = {
        "lib": str(lib),
        "lib_sha256": hashlib.sha256(lib.read_bytes()).hexdigest(),
        "reps": reps,
        "configs": {c: _describe_env(c) for c in CONFIGS},
        "sweep_configs": {c: _describe_env(c) for c in SWEEP_CONFIGS},
        "workloads": {w.name: w.description for w in workloads},
        "cache_dir": str(cache),
        "compiler": _compiler_id(),
        "cflags": list(CFLAGS),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "duration_s": round(time.time() - started, 2),
        "host": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "loadavg_end": list(os.getloadavg()),
        },
    }
    rows = summarize(measurements, workloads)
    sweep_rows, cross = summarize_sweep(
        measurements, sweep_sizes if sweep else (), sweep_modes if sweep else ()
    )
    return SuiteResult(meta, measurements, rows, sweep_rows, cross)


def _describe_env(config: str) -> str:
    return {
        "glibc": "no preload",
        "perturb": f"MALLOC_PERTURB_={PERTURB}",
        "refmalloc": "LD_PRELOAD=<lib>, default options",
        "small": f"LD_PRELOAD=<lib>, REFMALLOC_OPTIONS=threshold={SWEEP_SMALL_THRESHOLD}",
        "refpage": "LD_PRELOAD=<lib>, REFMALLOC_OPTIONS=threshold=<size>",
    }[config]


# --------------------------------------------------------------------------
# Report


def _cell(s: Stat | None, scale: float, digits: int = 1) -> str:
    return "-" if s is None else f"{s.median / scale:.{digits}f}"


def _x(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def _spread(s: Stat | None) -> str:
    return "-" if s is None or s.n < 2 else f"{100 * s.spread:.0f}%"


SWEEP_TITLES = {
    "reuse": "malloc + write 10% of pages + free, repeated (the freed block is reused)",
    "live": "malloc + write 10% of pages, all blocks kept live, then freed "
    f"(<= {SWEEP_LIVE_BUDGET >> 20} MiB live)",
}


def _format_sweep(mode: str, rows: Sequence[SweepRow], cross: int | None) -> list[str]:
    out = [
        f"threshold sweep, {mode}: {SWEEP_TITLES.get(mode, mode)}; total ms, median",
        "  small = refmalloc, threshold above the size (next allocator + memset); "
        "refpage = threshold=<size> (reference pages)",
    ]
    h = (
        f"{'size':>6}{'iters':>7}{'glibc ms':>10}{'small ms':>10}{'refpage ms':>12}"
        f"{'spread r/s':>12}{'refpage/small':>15}{'anon MiB g/s/r':>20}  faster"
    )
    out += [h, "-" * len(h)]
    for s in rows:
        t, a = s.time_ns, s.anon_kb
        ratio = s.ratio()
        faster = "-" if ratio is None else ("refpage" if ratio < 1 else "small")
        spreads = f"{_spread(t.get('refpage'))}/{_spread(t.get('small'))}"
        anon = "/".join(_cell(a.get(c), 1024) for c in SWEEP_CONFIGS)
        out.append(
            f"{_fmt_size(s.size):>6}{s.iterations:>7}{_cell(t.get('glibc'), 1e6, 2):>10}"
            f"{_cell(t.get('small'), 1e6, 2):>10}{_cell(t.get('refpage'), 1e6, 2):>12}"
            f"{spreads:>12}{_x(ratio):>15}{anon:>20}  {faster}"
        )
    if not rows:
        return out
    if cross is None:
        out.append(
            f"crossover ({mode}): refpage is not faster than small from any swept size up "
            f"(time alone supports a threshold above {_fmt_size(rows[-1].size)})"
        )
    else:
        out.append(
            f"crossover ({mode}): refpage faster from {_fmt_size(cross)} up "
            f"(time alone supports threshold={_fmt_size(cross)})"
        )
    return out


def format_report(result: SuiteResult) -> str:
    out: list[str] = []
    meta = result.meta
    out.append(
        f"refmalloc core benchmark: lib {meta['lib']}, {meta['reps']} repetitions, "
        f"medians; ratios against glibc (no pattern) in this run"
    )
    out.append("configs: " + "; ".join(f"{c} = {d}" for c, d in meta["configs"].items()))
    out.append("")
    header = (
        f"{'workload':<12}{'config':<11}{'time ms':>10}{'spread':>8}{'anon MiB':>10}"
        f"{'pss MiB':>9}{'time x':>8}{'anon x':>8}  goal (refmalloc vs glibc)"
    )
    out.append(header)
    out.append("-" * len(header))
    for r in result.rows:
        line = (
            f"{r.workload:<12}{r.config:<11}{_cell(r.time_ns, 1e6, 2):>10}"
            f"{_spread(r.time_ns):>8}{_cell(r.anon_kb, 1024):>10}{_cell(r.pss_kb, 1024):>9}"
            f"{_x(r.time_ratio):>8}{_x(r.anon_ratio):>8}"
        )
        if r.goal is not None:
            verdict = {True: "met", False: "NOT MET", None: "n/a"}[r.goal_met]
            line += f"  {r.goal.describe()}: {verdict}"
        if r.errors:
            line += f"  ERRORS {len(r.errors)}: {r.errors[0][:120]}"
        out.append(line)
    out.append(
        "spread = (max - min) / median of the time over the repetitions; "
        "memory sampled inside the program from /proc/self/smaps_rollup"
    )
    warnings = sorted(
        {f"{m.workload}/{m.config}: {w}" for m in result.measurements for w in m.warnings}
    )
    for w in warnings:
        out.append(f"warning: {w}")
    for mode in result.crossover:
        out.append("")
        out += _format_sweep(
            mode, [r for r in result.sweep if r.mode == mode], result.crossover[mode]
        )
    failed = sum(1 for m in result.measurements if m.error)
    if failed:
        out.append("")
        out.append(f"{failed} measurement(s) failed; see the progress lines / --json")
    out.append(
        "(load average at the end: "
        + " ".join(f"{x:.2f}" for x in meta["host"]["loadavg_end"])
        + f"; {meta['host']['cpus']} CPUs; {meta['duration_s']} s)"
    )
    return "\n".join(out)


# --------------------------------------------------------------------------
# Command line


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="core.py",
        description="Measure refmalloc against glibc (with and without MALLOC_PERTURB_) "
        "on sparse/dense/reuse/churn workloads, plus a threshold sweep.",
    )
    p.add_argument("--quick", action="store_true", help="2 repetitions instead of 5")
    p.add_argument("--reps", type=int, help="repetitions (overrides --quick)")
    p.add_argument("--json", metavar="OUT", help="write every raw number to OUT as JSON")
    p.add_argument(
        "--lib",
        metavar="PATH",
        help="librefmalloc.so (default: $REFMALLOC_LIB, "
        "pyalloc.lib_path(), <repo>/build/librefmalloc.so)",
    )
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        help=f"where compiled workloads go (default {default_cache_dir()})",
    )
    p.add_argument(
        "--workloads",
        metavar="LIST",
        help="comma separated subset of: " + ",".join(w.name for w in WORKLOADS),
    )
    p.add_argument("--no-sweep", action="store_true", help="skip the threshold sweep")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    reps = args.reps if args.reps is not None else (2 if args.quick else 5)
    workloads: Sequence[Workload] = WORKLOADS
    if args.workloads:
        wanted = [x.strip() for x in args.workloads.split(",") if x.strip()]
        known = {w.name for w in WORKLOADS}
        unknown = [x for x in wanted if x not in known]
        if unknown:
            print(
                f"core.py: unknown workload(s): {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})",
                file=sys.stderr,
            )
            return 2
        workloads = [w for w in WORKLOADS if w.name in wanted]
    if shutil.which(CC) is None:
        print(f"core.py: {CC} not found; it compiles the workloads", file=sys.stderr)
        return 2
    try:
        lib = find_lib(args.lib)
        result = run_suite(
            lib,
            reps=reps,
            cache_dir=Path(args.cache_dir) if args.cache_dir else None,
            workloads=workloads,
            sweep=not args.no_sweep,
        )
    except BenchError as exc:
        print(f"core.py: {exc}", file=sys.stderr)
        return 2
    print(format_report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result.to_json(), indent=1) + "\n")
        print(f"raw numbers written to {args.json}", file=sys.stderr)
    return 1 if result.failed else 0


if __name__ == "__main__":
    sys.exit(main())
