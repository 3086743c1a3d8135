"""The check itself: which runs, in which order, and the verdict."""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pyalloc.check import differential as df
from pyalloc.check import locate as loc
from pyalloc.check import reads as rd
from pyalloc.check.compare import ObservableResult, compare_runs
from pyalloc.check.differential import DEFAULT_PATTERN, other_pattern
from pyalloc.check.runner import ProgressFn, Runner, RunResult, RunSpec, no_aslr, stop_on_signals
from pyalloc.inject import is_python_command

CLEAN, DEPENDENCE, INCONCLUSIVE = 0, 1, 3
VERDICTS = {CLEAN: "clean", DEPENDENCE: "dependence", INCONCLUSIVE: "inconclusive"}

#: Free patterns of the use-after-free differential (every bit differs).
FREE_PATTERNS = (0xDD, 0x22)
#: The niceness of the runs beside a read-tracked run (the lowest priority).
UNTRACKED_NICE = 19


@dataclass
class CheckConfig:
    argv: Sequence[str]
    lib: str
    pattern: int = DEFAULT_PATTERN
    free_pattern: bool = False
    locate: bool = False
    #: One more run with track_reads=1: reads of never-written pages (--no-reads: off).
    reads: bool = True
    outputs: Sequence[str] = ()
    stdin: bytes | None = None
    timeout: float | None = None
    jobs: int = 4
    cwd: str | None = None
    env: Mapping[str, str] | None = None
    #: Extra REFMALLOC_OPTIONS for every run (threshold, ...).
    options: Mapping[str, object] = field(default_factory=dict)
    #: Called as each run starts and ends (see :class:`pyalloc.check.runner.Runner`).
    progress: ProgressFn | None = None

    @property
    def other_pattern(self) -> int:
        return other_pattern(self.pattern)


@dataclass
class Comparison:
    """One differential: baseline runs against runs of another configuration."""

    kind: str  # "uninitialized" or "use-after-free"
    baseline_label: str
    other_label: str
    patterns: tuple[int, int]
    observables: list[ObservableResult]
    confirmed: bool = False
    #: Differences seen in the first runs that the confirmation runs did not repeat.
    unconfirmed: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[ObservableResult]:
        return [o for o in self.observables if o.state == "differs"]


@dataclass
class LocateResult:
    sites_total: int = 0
    runs: int = 0
    sites: list[loc.NamedSite] = field(default_factory=list)
    note: str = ""


@dataclass
class CheckResult:
    config: CheckConfig
    verdict: int
    runs: list[RunResult]
    comparisons: list[Comparison]
    notes: list[str]
    aslr_disabled: bool
    seconds: float
    locate: LocateResult | None = None
    reads: rd.ReadsResult | None = None

    @property
    def verdict_name(self) -> str:
        return VERDICTS[self.verdict]


def _python_env(argv: Sequence[str], env: dict[str, str]) -> bool:
    python = is_python_command(argv, env.get("PATH"))
    if python:
        # Hash randomisation reorders sets and dicts from run to run.
        env.setdefault("PYTHONHASHSEED", "0")
    return python


def _executor(runner: Runner) -> df.Execute[RunResult]:
    def execute(
        specs: Sequence[RunSpec], parallel: bool, only: Sequence[str] | None
    ) -> list[RunResult]:
        # A command cannot be restricted to some observables: ``only`` is ignored.
        return runner.run_all(specs) if parallel else [runner.run(s) for s in specs]

    return execute


def _compare_commands(
    base: Sequence[RunResult],
    other: Sequence[RunResult],
    patterns: tuple[int, int],
    names: Sequence[str] | None,
) -> list[ObservableResult]:
    found = compare_runs(base, other, patterns)
    return found if names is None else [o for o in found if o.name in names]


#: The library's own lines about the tracker (userfaultfd refused, say), which only
#: the tracked run prints: not the program's behaviour.
_TRACKER_LINE = b"refmalloc: track_reads: "


def _untracked(run: RunResult) -> RunResult:
    """The tracked run as the program saw it: without the tracker's stderr lines."""
    lines = run.stderr.splitlines(keepends=True)
    kept = b"".join(line for line in lines if not line.startswith(_TRACKER_LINE))
    return dataclasses.replace(run, stderr=kept)


def _deterministic_left(observables: Sequence[ObservableResult], all_timed_out: bool) -> bool:
    status = observables[0]
    if status.state == "excluded":
        return False
    content = [o for o in observables[1:] if o.state != "absent"]
    if not content:
        # A status is an observation, unless every run was killed at the timeout.
        return not all_timed_out
    return any(o.state != "excluded" for o in content)


def _absent_outputs(outputs: Sequence[str], observables: Sequence[ObservableResult]) -> list[str]:
    """The --output paths that no run wrote (no file, or an empty directory, each time)."""
    seen = [o.name for o in observables if o.state != "absent"]
    return [
        name
        for name in outputs
        if not any(s == name or s.startswith(name.rstrip("/") + "/") for s in seen)
    ]


def run_check(config: CheckConfig) -> CheckResult:
    """Run the command under the patterns and compare; see ``refmalloc check --help``."""
    start = time.monotonic()
    env = dict(os.environ if config.env is None else config.env)
    python = _python_env(config.argv, env)
    runner = Runner(
        argv=config.argv,
        base_env=env,
        lib=config.lib,
        python=python,
        outputs=config.outputs,
        stdin=config.stdin,
        timeout=config.timeout,
        cwd=config.cwd,
        jobs=config.jobs,
        progress=config.progress,
    )
    pa, pb = config.pattern, config.other_pattern
    common: dict[str, object] = dict(config.options)
    if config.free_pattern:
        common["free_pattern"] = FREE_PATTERNS[0]

    # The other free pattern, and freed large blocks made inaccessible: an
    # access to one then faults, where the baseline reads its free pattern, so
    # a use after free shows even when its outcome is the same for both
    # patterns. (Guarding every run would make them all fault alike: clean.)
    free_runs: dict[str, object] = {"free_pattern": FREE_PATTERNS[1], "free_guard": True}

    def spec(label: str, **extra: object) -> RunSpec:
        return RunSpec(label, {**common, "pattern": pa, **extra})

    notes: list[str] = []
    with (
        stop_on_signals(runner),
        tempfile.TemporaryDirectory(prefix="refmalloc-check-") as tmp,
        no_aslr() as aslr_off,
    ):
        if not aslr_off:
            notes.append("address-space randomisation could not be turned off")
        sites_dir = Path(tmp, "sites")
        sites_dir.mkdir()
        first_extra: dict[str, object] = {}
        if config.locate:
            first_extra["sites"] = str(sites_dir / "sites.%p")
        specs = [
            spec("A1", **first_extra),
            spec("B1", pattern=pb),
            spec("A2"),
        ]
        if config.free_pattern:
            specs.append(spec("F1", **free_runs))
        reads_dir = Path(tmp, "reads")
        # The third pattern, zero (fresh glibc memory: a test of == 0 or NULL on an
        # uninitialized field passes under 0xaa and 0x55 alike), goes in the tracked
        # run, which costs no run of its own; a difference is confirmed by a plain
        # run under zero (Z2), without the tracker and its lowered threshold.
        zero = config.reads and 0 not in (pa, pb)
        if config.reads:
            reads_dir.mkdir()
            # Beside it, the untracked runs yield the CPU to it: the tracked run
            # (on one CPU, track_reads_one_cpu) waits at every first touch of a page
            # for its handler's wake-up, which a busy CPU delays (numpy script: its
            # first phase 4.0 s at the same priority, 3.2 s with the others at 19).
            specs = [dataclasses.replace(s, nice=UNTRACKED_NICE) for s in specs]
            specs.insert(
                0,
                spec(
                    "R1",
                    **rd.tracked_options(common),
                    report=str(reads_dir / rd.REPORT_NAME),
                    **({"pattern": 0} if zero else {}),
                )
            )
        variants: list[df.Variant[RunResult]] = [
            df.Variant("uninitialized", "B1", spec("B2", pattern=pb), (pa, pb), always_confirm=True)
        ]
        if config.free_pattern:
            variants.append(
                df.Variant("use-after-free", "F1", spec("F2", **free_runs), FREE_PATTERNS)
            )
        if zero:
            variants.append(
                df.Variant("uninitialized", "R1", spec("Z2", pattern=0), (pa, 0), view=_untracked)
            )
        plan = df.Plan(specs, ("A1", "A2"), spec("A3"), variants)
        done = df.run_plan(plan, _executor(runner), _compare_commands)
        results, base = done.runs, done.base
        comparisons = [
            Comparison(
                o.kind,
                o.baseline_label,
                o.other_label,
                o.patterns,
                o.observables,
                confirmed=o.confirmation_ran and bool(o.differences),
                unconfirmed=o.not_counted,
            )
            for o in done.outcomes
        ]
        reads = None
        if config.reads:
            reads = rd.collect(reads_dir, config.cwd, env.get("PATH"))
            if not reads.tracked:
                notes.append(f"reads were not tracked: {reads.reason}")
        differs = any(c.differences for c in comparisons) or bool(reads and reads.findings)
        all_timed_out = all(r.status.timed_out for r in results)
        if all_timed_out:
            notes.append(
                f"every run timed out (--timeout {config.timeout:g}s): the exit status "
                "tells nothing"
            )
        for name in _absent_outputs(config.outputs, comparisons[0].observables):
            notes.append(f"--output {name}: absent in every run (no run wrote it)")
        if differs:
            verdict = DEPENDENCE
        elif _deterministic_left(comparisons[0].observables, all_timed_out):
            verdict = CLEAN
        else:
            verdict = INCONCLUSIVE
        located = None
        if config.locate:
            if comparisons[0].differences:
                located = _locate(config, runner, base, sites_dir, Path(tmp), env, (pa, pb))
            else:
                located = LocateResult(note="nothing to locate: no uninitialized-read finding")
    return CheckResult(
        config=config,
        verdict=verdict,
        runs=results,
        comparisons=comparisons,
        notes=notes,
        aslr_disabled=aslr_off,
        seconds=time.monotonic() - start,
        locate=located,
        reads=reads if reads is not None else rd.ReadsResult(requested=False, reason="--no-reads"),
    )


def _locate(
    config: CheckConfig,
    runner: Runner,
    base: Sequence[RunResult],
    sites_dir: Path,
    tmp: Path,
    env: Mapping[str, str],
    patterns: tuple[int, int],
) -> LocateResult:
    sites = loc.merge_logs(sorted(sites_dir.glob("sites.*")))
    result = LocateResult(sites_total=len(sites))
    if not sites:
        result.note = "the run recorded no allocation sites"
        return result
    counter = [0]

    def positive(sets: Sequence[Sequence[loc.Site]]) -> list[bool]:
        specs = []
        for chosen in sets:
            counter[0] += 1
            listing = tmp / f"list{counter[0]}"
            loc.write_list(listing, chosen)
            specs.append(
                RunSpec(
                    f"L{counter[0]}",
                    {
                        **config.options,
                        "pattern": patterns[0],
                        "site_list": str(listing),
                        "site_pattern": patterns[1],
                    },
                )
            )
        runs = runner.run_all(specs)
        return [
            any(o.state == "differs" for o in compare_runs(base, [run], patterns)) for run in runs
        ]

    if not positive([sites])[0]:
        result.runs = counter[0]
        result.note = (
            "flipping the pattern of every logged site does not reproduce the difference "
            "(blocks from unlogged sites, e.g. allocated before the library started logging)"
        )
        return result
    found = loc.bisect(sites, positive)
    result.runs = counter[0]
    result.sites = [loc.name_site(s, config.cwd, env.get("PATH")) for s in found]
    if len(found) >= loc.MAX_SITES:
        result.note = f"stopped after {loc.MAX_SITES} sites"
    return result
