"""What the suite measures: the workloads, their sizes (full and --quick),
and their targets (issue 14's table; reported, never asserted)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

GiB = 1 << 30
MiB = 1 << 20
KiB = 1 << 10


@dataclasses.dataclass(frozen=True)
class Target:
    """An upper bound on config's median of `metric`: over the baseline's median
    (one configuration, or the fastest of several), or on the value itself."""

    config: str
    metric: str  # "time", "peak_anon", "peak_pss" or a field like "maps_live"
    bound: float
    #: "glibc", another configuration, a tuple (the lowest median of those
    #: configurations that ran), or None: the bound applies to the value itself.
    baseline: str | tuple[str, ...] | None = "glibc"
    #: Absolute values only: divided by this field's median (the cycles of a
    #: loop), then multiplied by `scale` into `unit`.
    per: str = ""
    scale: float = 1.0
    unit: str = ""
    #: Ratios only: the pattern files' bytes (rm_pattern_bytes, where the
    #: program reports them) are allowed beyond the bound (peak PSS).
    plus_pattern: bool = False

    def describe(self) -> str:
        if self.baseline is None:
            unit = f" {self.unit}" if self.unit else ""
            return f"{self.config} {self.metric} <= {self.bound:g}{unit}"
        base = (
            f"the fastest of {', '.join(self.baseline)}"
            if isinstance(self.baseline, tuple)
            else self.baseline
        )
        extra = " + the pattern files" if self.plus_pattern else ""
        return f"{self.config} {self.metric} <= {self.bound:g}x {base}{extra}"


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    group: str
    kind: str  # "c" (program in bench/programs), "python", "sqlite3", "gcc"
    program: str = ""  # C source stem
    args: tuple[str, ...] = ()
    description: str = ""
    targets: tuple[Target, ...] = ()
    skip_eager: bool = False  # configs that memset large blocks whole are skipped
    params: tuple[tuple[str, Any], ...] = ()  # for the plots: size, touch...

    def param(self, key: str) -> Any:
        return dict(self.params).get(key)


def _size(n: int) -> str:
    for unit, shift in (("g", 30), ("m", 20), ("k", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return str(n)


TOUCH_TEXT = {
    "1pct": "1% of pages written",
    "half": "half of the pages written",
    "all": "written whole",
    "4k": "first 4 KiB written",
}

#: The peers that fill every block they hand out (glibc with its tcache does
#: not: a block from the tcache keeps what was in it).
FILLING_PEERS = ("glibc-perturb-notc", "jemalloc-junk", "scudo-pattern")
RM = "refmalloc"
SPARSE = (Target(RM, "time", 1.2), Target(RM, "peak_anon", 1.05))
DENSE = (Target(RM, "time", 1.1),)
#: The MAP_REFPAGE series' microbenchmark: per cycle, and against MALLOC_PERTURB_.
REFPAGE_4K = (
    Target(RM, "time", 2.0, baseline=None, per="count", scale=1e-3, unit="µs per cycle"),
    Target(RM, "time", 0.02, baseline="glibc-perturb"),
)
REUSE = (Target(RM, "time", 1.5),)
CHURN_SMALL = (
    Target(RM, "time", 1.3),
    Target(RM, "time", 1.0, baseline=FILLING_PEERS),
    Target("refmalloc+mimalloc", "time", 1.0),
)
CHURN_64K = (Target(RM, "time", 0.8, baseline=("glibc-perturb", *FILLING_PEERS)),)
REALLOC_ALL = (Target(RM, "time", 1.05),)
#: name, realloc.c's touch mode, the last size over the suite's top, what it
#: writes, targets. realloc-move (two blocks grown in turn: the move path, one
#: mremap per move) has no row of its own in issue 14: realloc-all's bound.
REALLOC = (
    ("realloc-all", "all", 1, "new part written whole", REALLOC_ALL),
    ("realloc-sparse", "sparse", 1, "new part written one byte", (Target(RM, "time", 1.5),)),
    (
        "realloc-move",
        "pair",
        1 / 4,
        "two blocks in turn (each moves), new parts written whole",
        REALLOC_ALL,
    ),
)
SCALE = (Target(RM, "time", 1.2),)
SCALE64 = (*SCALE, Target(RM, "maps_live", 4096, baseline=None))
REAL = (Target(RM, "time", 1.05),)
#: Issue 14 names no figure for start-up ("an empty program costs about 2x"):
#: the real programs' bound.
STARTUP = REAL
#: Every workload: peak PSS, and pattern files of at most 64 MiB.
MEMORY = (
    Target(RM, "peak_pss", 1.05, plus_pattern=True),
    Target(RM, "rm_pattern_bytes", 64, baseline=None, scale=1 / MiB, unit="MiB"),
)


def build_workloads(quick: bool) -> list[Workload]:
    w: list[Workload] = []
    # Large blocks, all live at once: total bytes per run fixed.
    total = 256 * MiB if quick else GiB
    sizes = (MiB, 64 * MiB) if quick else (MiB, 16 * MiB, 256 * MiB, GiB)
    for touch in ("1pct", "half", "all"):
        for size in sizes:
            count = max(1, total // size)
            targets = SPARSE if touch == "1pct" else DENSE
            w.append(
                Workload(
                    f"large-{touch}-{_size(size)}",
                    "large",
                    "c",
                    "large",
                    (str(size), str(count), touch, "live"),
                    f"{count} x {_size(size)} live, {TOUCH_TEXT[touch]}",
                    targets,
                    params=(("size", size), ("touch", touch)),
                )
            )
    # The MAP_REFPAGE series' microbenchmark: malloc, touch, free, 1000 times.
    n = 100 if quick else 1000
    for touch in ("4k", "half", "all"):
        w.append(
            Workload(
                f"refpage-{touch}",
                "refpage",
                "c",
                "large",
                ("4096000", str(n), touch, "loop"),
                f"{n} x (malloc 4,096,000 B, {TOUCH_TEXT[touch]}, free)",
                REFPAGE_4K if touch == "4k" else (),
                params=(("size", 4096000), ("touch", touch)),
            )
        )
    for size, iters in ((4 * MiB, 100),) if quick else ((MiB, 500), (8 * MiB, 200)):
        w.append(
            Workload(
                f"reuse-{_size(size)}",
                "reuse",
                "c",
                "reuse",
                (str(size), str(iters)),
                f"{iters} x (malloc {_size(size)}, write whole, free)",
                REUSE,
                params=(("size", size),),
            )
        )
    churn = (
        ((1, 2048, 200_000), (2, 2048, 100_000), (1, 65536, 40_000))
        if quick
        else (
            (1, 2048, 1_000_000),
            (2, 2048, 500_000),
            (8, 2048, 125_000),
            (1, 65536, 200_000),
            (2, 65536, 100_000),
            (8, 65536, 25_000),
        )
    )
    for threads, top, ops in churn:
        w.append(
            Workload(
                f"churn-{_size(top)}-t{threads}",
                "churn",
                "c",
                "churn",
                (str(threads), str(top), str(ops)),
                f"{threads} thread(s) x {ops} malloc/free, 8..{_size(top)} B, 1000 live slots each",
                CHURN_SMALL if top <= 2048 else CHURN_64K,
                params=(("threads", threads), ("max", top)),
            )
        )
    top = 64 * MiB if quick else GiB
    for name, touch, share, text, targets in REALLOC:
        end = int(top * share)
        w.append(
            Workload(
                name,
                "realloc",
                "c",
                "realloc",
                (str(16 * KiB), str(end), touch, "1"),
                f"realloc doubling 16k..{_size(end)}, {text}",
                targets,
            )
        )
    for gib in (1,) if quick else (1, 8, 64):
        w.append(
            Workload(
                f"scale-{gib}g",
                "scale",
                "c",
                "scale",
                (str(gib * GiB), str(64 * MiB)),
                f"{gib} GiB live in 64 MiB blocks, 1% of pages written",
                SCALE64 if gib == 64 else SCALE,
                skip_eager=gib > 1,
                params=(("total", gib * GiB),),
            )
        )
    n = 200 if quick else 1000
    w.append(
        Workload(
            "startup",
            "startup",
            "c",
            "startup",
            (str(n),),
            f"{n} x (posix_spawn an empty program, wait)",
            STARTUP,
        )
    )
    w.append(
        Workload(
            "python",
            "real",
            "python",
            args=("30000",) if quick else ("60000",),
            description="Python script (dicts, strings, json, sort), PYTHONMALLOC=malloc",
            targets=REAL,
        )
    )
    rows = 50_000 if quick else 200_000
    w.append(
        Workload(
            "sqlite3",
            "real",
            "sqlite3",
            args=(str(rows),),
            description=f"sqlite3 CLI, in-memory: insert {rows} rows, index, queries",
            targets=REAL,
        )
    )
    w += check_workloads(quick, rows)
    w.append(
        Workload(
            "gcc",
            "real",
            "gcc",
            args=("60",) if quick else ("150",),
            description="gcc -O2 -c of a generated C file",
            targets=REAL,
        )
    )
    return [
        dataclasses.replace(x, targets=x.targets + MEMORY) if x.group != "check" else x for x in w
    ]


CORPUS_DIR = Path(__file__).resolve().parent.parent / "tests" / "check_corpus"


def check_workloads(quick: bool, rows: int) -> list[Workload]:
    """The check group (bench/checkgroup.py): one row per program, its columns the modes.

    The goal (check <= 3.5x one plain run) is set on the real programs only: the corpus
    programs run for milliseconds, so their ratio is check's fixed start-up (Python,
    four runs' exec), shown as "check +ms" in the table."""
    goal = (Target("check", "time", 3.5),)
    out = []
    corpus = sorted(CORPUS_DIR.glob("reads_*")) + sorted(CORPUS_DIR.glob("clean_reads_*"))
    corpus += [CORPUS_DIR / "clean_numpy.py"]
    for src in corpus:
        if src.suffix not in (".c", ".py"):
            continue
        expect = "clean" if src.name.startswith("clean") else "reads"
        kind = {"clean": "clean", "reads": "read case"}
        out.append(
            Workload(
                f"check-{src.stem}",
                "check",
                "check",
                src.name,
                description=f"tests/check_corpus/{src.name} ({kind[expect]})",
                params=(("expect", expect),),
            )
        )
    out.append(
        Workload(
            "check-sqlite3",
            "check",
            "check",
            "sqlite3",
            (str(rows),),
            f"the sqlite3 workload ({rows} rows)",
            goal,
        )
    )
    out.append(
        Workload(
            "check-numpy",
            "check",
            "check",
            "numpy",
            ("20",) if quick else ("120",),
            "numpy script: arrays of 8 KiB to 2 MiB made, sorted, summed, dropped",
            goal,
        )
    )
    return out


def select(workloads: list[Workload], spec: str | None) -> list[Workload]:
    """Filter by a comma list of names, group names or name prefixes."""
    if not spec:
        return workloads
    wanted = [x.strip() for x in spec.split(",") if x.strip()]
    out = [
        w
        for w in workloads
        if any(x == w.name or x == w.group or w.name.startswith(x + "-") for x in wanted)
    ]
    unknown = [
        x
        for x in wanted
        if not any(x == w.name or x == w.group or w.name.startswith(x + "-") for w in workloads)
    ]
    if unknown:
        raise ValueError(
            f"unknown workload(s): {', '.join(unknown)}; known: "
            + ", ".join(sorted({w.group for w in workloads} | {w.name for w in workloads}))
        )
    return out
