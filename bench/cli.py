"""python -m bench: the command line of the benchmark suite."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import compare, plots, programs, report, suite, summary, sweep
from bench.configs import BASELINE, BY_NAME, CONFIGS, find_lib
from bench.workloads import build_workloads, select

DEFAULT_OUT = programs.BENCH_DIR / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="refmalloc side by side with glibc (with and without MALLOC_PERTURB_), "
        "jemalloc (plain, junk), mimalloc, tcmalloc and Scudo (plain, pattern fill), in one "
        "run: medians, ratios to glibc without pattern, targets, JSON and PNG plots.",
    )
    p.add_argument(
        "--quick", action="store_true", help="small sizes, 1 repetition (under 2 minutes)"
    )
    p.add_argument("--reps", type=int, help="repetitions (default 3; --quick 1)")
    p.add_argument(
        "--sweep",
        action="store_true",
        help="run the threshold sweep instead of the suite: for blocks of 16 KiB to 1 MiB, "
        "refmalloc's reference pages (threshold=<size>) against its small path "
        "(threshold=1g: next allocator + memset) and glibc, blocks reused and kept live; "
        "prints the crossover size and writes sweep.md and sweep.json to --out "
        "(--quick: 4 sizes, 200 blocks, seconds)",
    )
    p.add_argument(
        "--configs",
        metavar="LIST",
        help="comma list of configurations (glibc is always added): "
        + ",".join(c.name for c in CONFIGS),
    )
    p.add_argument(
        "--workloads", metavar="LIST", help="comma list of workload names or groups (--list)"
    )
    p.add_argument("--list", action="store_true", help="list workloads and configurations")
    p.add_argument(
        "--lib",
        metavar="PATH",
        help="librefmalloc.so (default: $REFMALLOC_LIB, "
        "pyalloc.lib_path(), <repo>/build/librefmalloc.so)",
    )
    p.add_argument(
        "--out",
        metavar="DIR",
        default=str(DEFAULT_OUT),
        help=f"where results.json, table.md and the PNG plots go (default {DEFAULT_OUT})",
    )
    p.add_argument("--json", metavar="FILE", help="also write the JSON to FILE")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--cache-dir", metavar="DIR", help="where compiled programs go")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument(
        "--from-json",
        metavar="FILE",
        help="measure nothing: render the tables and plots of an earlier results.json again",
    )
    p.add_argument(
        "--compare",
        metavar="OLD.json",
        help="also print this run's ratios beside those of an earlier results.json "
        "(before → now, and now/before), and write them to compare.md in --out",
    )
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    err = sys.stderr
    if args.sweep:
        return _sweep(args, argv)
    try:
        earlier = _earlier_run(args.compare)
    except ValueError as exc:
        print(f"bench: --compare {args.compare}: {exc}", file=err)
        return 2
    workloads = build_workloads(args.quick)
    if args.list:
        for w in workloads:
            print(f"{w.name:<22} {w.group:<8} {w.description}")
        print()
        for c in CONFIGS:
            print(f"{c.name:<20} {c.description}")
        return 0
    if args.from_json:
        data = json.loads(Path(args.from_json).read_text())
        result = suite.from_json(data)
        command = data["meta"].get("command", "python -m bench")
        return _output(args, result, command, save=False, earlier=earlier)
    try:
        workloads = select(workloads, args.workloads)
    except ValueError as exc:
        print(f"bench: {exc}", file=err)
        return 2
    if args.configs:
        names = [x.strip() for x in args.configs.split(",") if x.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            print(
                f"bench: unknown configuration(s): {', '.join(unknown)}; known: "
                + ", ".join(BY_NAME),
                file=err,
            )
            return 2
        if BASELINE not in names:
            names.insert(0, BASELINE)
        configs = [c for c in CONFIGS if c.name in names]
    else:
        configs = list(CONFIGS)
    reps = _reps(args)
    if reps is None:
        return 2
    lib = None
    try:
        lib = find_lib(args.lib)
    except FileNotFoundError as exc:
        print(f"bench: {exc}; the refmalloc configurations are skipped", file=err)
    try:
        result = suite.run(
            workloads,
            configs,
            lib,
            reps=reps,
            cache=Path(args.cache_dir) if args.cache_dir else None,
            progress=not args.no_progress,
        )
    except (programs.BuildError, RuntimeError) as exc:
        print(f"bench: {exc}", file=err)
        return 2
    command = _command(argv)
    result.meta["command"] = command
    result.meta["quick"] = args.quick
    return _output(args, result, command, save=True, earlier=earlier)


def _earlier_run(path: str | None) -> dict[str, Any] | None:
    """The results.json --compare names, read before measuring so a typo costs no run."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read it: {exc}") from exc
    if not isinstance(data, dict) or "summary" not in data:
        raise ValueError("not a results.json of python -m bench")
    return data


def _reps(args: argparse.Namespace) -> int | None:
    """The repetitions asked for, or None (said on stderr) when the run cannot start."""
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1:
        print("bench: --reps must be at least 1", file=sys.stderr)
        return None
    if shutil.which(programs.CC) is None:
        print(f"bench: {programs.CC} not found; it compiles the programs", file=sys.stderr)
        return None
    return reps


def _command(argv: Sequence[str] | None) -> str:
    words = list(argv if argv is not None else sys.argv[1:])
    return "python -m bench" + (" " + shlex.join(words) if words else "")


def _sweep(args: argparse.Namespace, argv: Sequence[str] | None) -> int:
    err = sys.stderr
    if args.configs or args.workloads or args.from_json or args.list or args.compare:
        print(
            "bench: --sweep has its own program and configurations: "
            "--configs, --workloads, --from-json, --list and --compare do not apply",
            file=err,
        )
        return 2
    reps = _reps(args)
    if reps is None:
        return 2
    try:
        lib = find_lib(args.lib)
        result = sweep.run(
            lib,
            quick=args.quick,
            reps=reps,
            cache=Path(args.cache_dir) if args.cache_dir else None,
            progress=not args.no_progress,
        )
    except (FileNotFoundError, programs.BuildError) as exc:
        print(f"bench: {exc}", file=err)
        return 2
    command = _command(argv)
    result.meta["command"] = command
    text = sweep.render(result, command)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.md").write_text(text)
    blob = json.dumps(sweep.to_json(result), indent=1, default=str) + "\n"
    (out / "sweep.json").write_text(blob)
    if args.json:
        Path(args.json).write_text(blob)
    print(f"bench: results in {out}/sweep.json and {out}/sweep.md", file=err)
    return 1 if any(m.error for m in result.measurements) else 0


def _output(
    args: argparse.Namespace,
    result: suite.RunResult,
    command: str,
    save: bool,
    earlier: dict[str, Any] | None,
) -> int:
    err = sys.stderr
    cells = summary.summarize(result)
    verdicts = summary.verdicts(result, cells)
    text = report.render(result, cells, verdicts, command)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(text)
    data = summary.to_json(result, cells, verdicts)
    if earlier is not None:
        compared = compare.render(earlier, data, args.compare)
        print(compared)
        (out / "compare.md").write_text(compared)
        print(f"bench: comparison in {out}/compare.md", file=err)
    if save:
        blob = json.dumps(data, indent=1, default=str) + "\n"
        (out / "results.json").write_text(blob)
        if args.json:
            Path(args.json).write_text(blob)
        print(f"bench: results in {out}/results.json and {out}/table.md", file=err)
    else:
        print(f"bench: table in {out}/table.md", file=err)
    if args.no_plots:
        pass
    elif plots.have_matplotlib():
        for path in plots.plot(result, cells, out):
            print(f"bench: plot {path}", file=err)
    else:
        print(
            "bench: matplotlib is not installed: no PNG plots written "
            "(pip install matplotlib, or apt-get install python3-matplotlib)",
            file=err,
        )
    return 1 if any(m.error for m in result.measurements) else 0
