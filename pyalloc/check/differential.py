"""The differential engine of ``refmalloc check`` and ``pytest --refmalloc-check``.

One plan for both: a first phase of runs (the baseline, its rerun where the caller
can afford it, one run of every other configuration, and runs compared by nobody
here, such as a read-tracked run), then, when any observable differs, a confirmation:
a baseline rerun first, then a rerun of each other configuration that differed,
**one after another**. Side by side, a run's load could make a timing-sensitive
observable change in only one configuration and look like a dependence twice.

An observable counts (confirmed) only when it still differs once every run is
compared: the baseline runs agree with each other and the other configuration's
runs agree with each other. An observable that differed in the first phase and not
in the end is *nondeterministic* when the baseline runs disagree on it, and
*unconfirmed* otherwise (the other configuration did not repeat itself).

The engine knows neither how a run is made nor what it observes: the caller gives
an :data:`Execute` (run specs side by side or one by one, optionally restricted to
some observables, e.g. the differing tests of a pytest session) and a
:data:`Compare` (``compare.compare_runs`` for commands, outcomes by node id for
pytest), both returning :class:`ObservableResult` lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from pyalloc.check.compare import ObservableResult
from pyalloc.check.runner import RunSpec

#: The baseline pattern of both checks.
DEFAULT_PATTERN = 0xAA


def other_pattern(pattern: int) -> int:
    """The pattern compared against ``pattern``: every bit differs."""
    return pattern ^ 0xFF


class _Labelled(Protocol):
    @property
    def spec(self) -> RunSpec: ...


R = TypeVar("R", bound=_Labelled)

#: Run these specs and return their results in order: side by side when ``parallel``,
#: else one after another; ``only`` (names of observables) may restrict the runs to
#: them, when the kind of run allows it (pytest: the differing tests), or be ignored.
Execute = Callable[[Sequence[RunSpec], bool, Sequence[str] | None], list[R]]
#: Compare baseline runs with other runs, under the given patterns; ``names`` (when
#: not None) are the only observables to compare.
Compare = Callable[
    [Sequence[R], Sequence[R], tuple[int, int], Sequence[str] | None], list[ObservableResult]
]


@dataclass(frozen=True)
class Variant(Generic[R]):
    """A configuration compared with the baseline."""

    kind: str  # "uninitialized", "use-after-free"
    #: The label of its run in the first phase (one of ``Plan.first``).
    first: str
    #: Its confirmation run.
    confirm: RunSpec
    patterns: tuple[int, int]
    #: The first run as it is compared (the tracked run without the tracker's lines).
    view: Callable[[R], R] | None = None
    #: Rerun it whenever anything differs, not only when it does (the main
    #: differential, whose comparison also decides clean against inconclusive).
    always_confirm: bool = False


@dataclass(frozen=True)
class Plan(Generic[R]):
    #: Every run of the first phase, in starting order.
    first: Sequence[RunSpec]
    #: The labels of the baseline runs among them (the first one, its reruns).
    baseline: Sequence[str]
    #: The baseline rerun that starts the confirmation.
    confirm_baseline: RunSpec
    variants: Sequence[Variant[R]]
    #: Runs of the first phase side by side (the confirmation never is).
    parallel: bool = True
    #: The confirmation runs only the observables that differed, and only they are
    #: compared again (pytest: the differing tests); else everything is.
    restrict: bool = False


@dataclass
class Outcome:
    """One variant's differential, as first seen and after the confirmation."""

    kind: str
    baseline_label: str
    other_label: str
    patterns: tuple[int, int]
    #: The final comparison (the first one when nothing differed).
    observables: list[ObservableResult]
    first: list[ObservableResult]
    confirmation_ran: bool = False
    confirmed: list[str] = field(default_factory=list)
    #: Differed first, not in the end, and the baseline runs agree: not repeated.
    unconfirmed: list[str] = field(default_factory=list)
    #: Differed first, not in the end, and the baseline runs disagree on it.
    nondeterministic: list[str] = field(default_factory=list)

    @property
    def differences(self) -> list[ObservableResult]:
        return [o for o in self.observables if o.state == "differs"]

    @property
    def not_counted(self) -> list[str]:
        """Every first difference that the confirmation did not repeat, in order."""
        dropped = {*self.unconfirmed, *self.nondeterministic}
        return [o.name for o in self.first if o.state == "differs" and o.name in dropped]


@dataclass
class Result(Generic[R]):
    runs: list[R]
    by_label: dict[str, R]
    #: The baseline runs, in order (after the confirmation: with its rerun).
    base: list[R]
    outcomes: list[Outcome]


def _differing(observables: Sequence[ObservableResult]) -> list[str]:
    return [o.name for o in observables if o.state == "differs"]


def run_plan(plan: Plan[R], execute: Execute[R], compare: Compare[R]) -> Result[R]:
    """Run the plan and classify every difference (see the module's description)."""
    results = execute(plan.first, plan.parallel, None)
    by = {r.spec.label: r for r in results}
    base = [by[label] for label in plan.baseline]

    def others(variant: Variant[R], extra: Sequence[R] = ()) -> list[R]:
        first = by[variant.first]
        return [variant.view(first) if variant.view else first, *extra]

    outcomes = []
    for v in plan.variants:
        seen = compare(base, others(v), v.patterns, None)
        outcomes.append(
            Outcome(v.kind, base[0].spec.label, v.first, v.patterns, list(seen), list(seen))
        )
    wanted = [n for o in outcomes for n in _differing(o.first)]
    if not wanted:
        return Result(results, by, base, outcomes)

    only = list(dict.fromkeys(wanted)) if plan.restrict else None
    rerun = [
        (v, o)
        for v, o in zip(plan.variants, outcomes, strict=True)
        if v.always_confirm or o.differences
    ]
    # One after another: the baseline first, then each configuration that differed.
    more = execute([plan.confirm_baseline, *(v.confirm for v, _ in rerun)], False, only)
    results += more
    by.update({r.spec.label: r for r in more})
    base = [*base, by[plan.confirm_baseline.label]]
    for v, outcome in zip(plan.variants, outcomes, strict=True):
        again = [by[v.confirm.label]] if v.confirm.label in by else []
        names = _differing(outcome.first) if plan.restrict else None
        final = compare(base, others(v, again), v.patterns, names)
        if plan.restrict:
            # The observables not rerun keep their first comparison.
            rerun_names = set(names or ())
            kept = {o.name: o for o in final}
            final = [kept.get(o.name, o) if o.name in rerun_names else o for o in outcome.first]
        outcome.observables = final
        outcome.confirmation_ran = True
        outcome.confirmed = _differing(final)
        dropped = [n for n in _differing(outcome.first) if n not in set(outcome.confirmed)]
        if dropped:
            among = compare(base[:1], base[1:], (v.patterns[0], v.patterns[0]), dropped)
            varying = {o.name for o in among if o.state in ("differs", "excluded")}
            outcome.nondeterministic = [n for n in dropped if n in varying]
            outcome.unconfirmed = [n for n in dropped if n not in varying]
    return Result(results, by, base, outcomes)
