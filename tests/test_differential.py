"""The differential engine (pyalloc.check.differential) with fake runs: which runs
it makes, in which order, and how it classifies a difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pyalloc.check import differential as df
from pyalloc.check.compare import ObservableResult
from pyalloc.check.core import _compare_commands
from pyalloc.check.runner import RunResult, RunSpec, Status


@dataclass
class Fake:
    spec: RunSpec
    outcomes: dict[str, str]


def _compare(
    base: Sequence[Fake],
    other: Sequence[Fake],
    patterns: tuple[int, int],
    names: Sequence[str] | None,
) -> list[ObservableResult]:
    names = names or list(dict.fromkeys(n for r in (*base, *other) for n in r.outcomes))
    found = []
    for name in names:
        sb = {r.outcomes.get(name) for r in base}
        so = {r.outcomes.get(name) for r in other}
        state = "excluded" if len(sb) > 1 or len(so) > 1 else "same" if sb == so else "differs"
        found.append(ObservableResult(name, state))
    return found


def _plan() -> df.Plan[Fake]:
    def spec(label: str, pattern: int) -> RunSpec:
        return RunSpec(label, {"pattern": pattern})

    return df.Plan(
        first=[spec("A1", 0xAA), spec("B1", 0x55)],
        baseline=["A1"],
        confirm_baseline=spec("A2", 0xAA),
        variants=[df.Variant("uninitialized", "B1", spec("B2", 0x55), (0xAA, 0x55))],
        restrict=True,
    )


def _run(script: dict[str, dict[str, str]]) -> tuple[df.Result[Fake], list[tuple]]:
    calls: list[tuple] = []

    def execute(specs: Sequence[RunSpec], parallel: bool, only: Sequence[str] | None):
        calls.append(([s.label for s in specs], parallel, only))
        return [Fake(s, dict(script[s.label])) for s in specs]

    return df.run_plan(_plan(), execute, _compare), calls


def test_difference_repeated_by_both_reruns_is_confirmed():
    done, calls = _run(
        {
            "A1": {"t": "passed", "u": "passed"},
            "B1": {"t": "failed", "u": "passed"},
            "A2": {"t": "passed"},
            "B2": {"t": "failed"},
        }
    )
    # First phase side by side; confirmation one after another, the baseline first,
    # restricted to the differing test.
    assert calls == [(["A1", "B1"], True, None), (["A2", "B2"], False, ["t"])]
    outcome = done.outcomes[0]
    assert outcome.confirmed == ["t"]
    assert outcome.unconfirmed == outcome.nondeterministic == outcome.not_counted == []
    # A test that did not differ keeps its first comparison (it was not rerun).
    assert [(o.name, o.state) for o in outcome.observables] == [("t", "differs"), ("u", "same")]


def test_difference_not_repeated_is_unconfirmed():
    done, _ = _run(
        {"A1": {"t": "passed"}, "B1": {"t": "failed"}, "A2": {"t": "passed"}, "B2": {"t": "passed"}}
    )
    outcome = done.outcomes[0]
    assert outcome.confirmed == []
    assert outcome.unconfirmed == outcome.not_counted == ["t"]
    assert outcome.nondeterministic == []


def test_baseline_rerun_disagreeing_with_the_first_is_not_counted():
    done, _ = _run(
        {"A1": {"t": "passed"}, "B1": {"t": "failed"}, "A2": {"t": "failed"}, "B2": {"t": "failed"}}
    )
    outcome = done.outcomes[0]
    assert outcome.confirmed == []
    assert outcome.nondeterministic == outcome.not_counted == ["t"]
    assert outcome.unconfirmed == []


def test_nothing_differs_no_confirmation():
    done, calls = _run({"A1": {"t": "passed"}, "B1": {"t": "passed"}})
    assert calls == [(["A1", "B1"], True, None)]
    assert not done.outcomes[0].confirmation_ran
    assert done.outcomes[0].confirmed == []


def _cmd(label: str, stdout: bytes) -> RunResult:
    return RunResult(RunSpec(label, {}), Status(exit_code=0), stdout, b"")


def test_command_runs_compared_by_compare_py():
    """refmalloc check's observables: stdout that differed once and not on the rerun."""
    outs = {"A1": b"x\n", "A2": b"x\n", "B1": b"y\n", "A3": b"x\n", "B2": b"x\n"}
    calls = []

    def execute(specs, parallel, only):
        calls.append(([s.label for s in specs], parallel))
        return [_cmd(s.label, outs[s.label]) for s in specs]

    plan: df.Plan[RunResult] = df.Plan(
        first=[RunSpec("A1", {}), RunSpec("B1", {}), RunSpec("A2", {})],
        baseline=["A1", "A2"],
        confirm_baseline=RunSpec("A3", {}),
        variants=[df.Variant("uninitialized", "B1", RunSpec("B2", {}), (0xAA, 0x55))],
    )
    done = df.run_plan(plan, execute, _compare_commands)
    assert calls == [(["A1", "B1", "A2"], True), (["A3", "B2"], False)]
    outcome = done.outcomes[0]
    assert outcome.confirmed == []
    assert outcome.not_counted == ["stdout"]
    assert [r.spec.label for r in done.base] == ["A1", "A2", "A3"]
