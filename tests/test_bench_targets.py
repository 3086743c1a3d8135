"""The suite's targets (issue 14's table) evaluated on medians: ratios to glibc,
to the fastest of several peers, per cycle, PSS with the pattern files allowed,
and an earlier results.json judged by today's targets (--compare)."""

from __future__ import annotations

import pytest

from bench import compare
from bench.summary import target_from_json, target_value
from bench.workloads import FILLING_PEERS, MiB, Target, build_workloads


def medians(**by_config: dict[str, float]) -> dict[str, dict[str, float]]:
    return {name.replace("_", "-"): values for name, values in by_config.items()}


def test_ratio_to_the_fastest_of_several_peers():
    t = Target("refmalloc", "time", 0.8, baseline=("glibc-perturb", "scudo-pattern"))
    row = medians(
        refmalloc={"time": 60.0}, glibc_perturb={"time": 100.0}, scudo_pattern={"time": 75.0}
    )
    assert target_value(t, row) == pytest.approx(0.8)
    # A peer that did not run does not count; none at all: not measured.
    del row["scudo-pattern"]
    assert target_value(t, row) == pytest.approx(0.6)
    del row["glibc-perturb"]
    assert target_value(t, row) is None


def test_absolute_value_per_cycle_in_microseconds():
    t = Target(
        "refmalloc", "time", 2.0, baseline=None, per="count", scale=1e-3, unit="µs per cycle"
    )
    assert target_value(t, {"refmalloc": {"time": 4_000_000.0, "count": 1000.0}}) == pytest.approx(
        4.0
    )
    assert t.describe() == "refmalloc time <= 2 µs per cycle"


def test_pss_allows_the_pattern_files():
    t = Target("refmalloc", "peak_pss", 1.05, plus_pattern=True)
    # glibc 1000 KiB; refmalloc 1050 KiB + 4 MiB of pattern file: exactly at the bound.
    row = {
        "glibc": {"peak_pss": 1000.0},
        "refmalloc": {"peak_pss": 1050.0 + 4096, "rm_pattern_bytes": 4.0 * MiB},
    }
    assert target_value(t, row) == pytest.approx(1.05)
    row["refmalloc"]["peak_pss"] += 10
    assert target_value(t, row) > 1.05
    # Not reported (a real program): no allowance.
    del row["refmalloc"]["rm_pattern_bytes"]
    assert target_value(t, row) == pytest.approx((1050 + 4096 + 10) / 1000)


def test_every_row_of_issue_14_has_its_target():
    ws = {w.name: w for w in build_workloads(quick=False)}

    def has(name: str, **fields: object) -> bool:
        return any(all(getattr(t, k) == v for k, v in fields.items()) for t in ws[name].targets)

    for size in ("1m", "16m", "256m", "1g"):
        assert has(f"large-1pct-{size}", metric="time", bound=1.2)
        assert has(f"large-half-{size}", metric="time", bound=1.1)
        assert has(f"large-all-{size}", metric="time", bound=1.1)
    assert has("refpage-4k", per="count", bound=2.0) and has(
        "refpage-4k", baseline="glibc-perturb", bound=0.02
    )
    assert has("reuse-1m", bound=1.5) and has("reuse-8m", bound=1.5)
    assert has("realloc-sparse", bound=1.5) and has("realloc-all", bound=1.05)
    for gib in (1, 8, 64):
        assert has(f"scale-{gib}g", metric="time", bound=1.2)
    assert has("scale-64g", metric="maps_live", bound=4096)
    for threads in (1, 2, 8):
        assert has(f"churn-2k-t{threads}", baseline=FILLING_PEERS, bound=1.0)
        assert has(f"churn-64k-t{threads}", bound=0.8)
    for name in ("python", "sqlite3", "gcc"):
        assert has(name, metric="time", bound=1.05)
    for name, w in ws.items():
        if w.group != "check":
            assert has(name, metric="peak_pss", plus_pattern=True), name


def test_compare_judges_the_earlier_run_by_todays_targets():
    t = Target("refmalloc", "time", 1.5)
    entry = {"workload": "reuse-1m", "target": t.describe(), **t.__dict__}
    assert target_from_json({**entry, "baseline": "glibc"}) == t

    def run(rm: float) -> dict[str, object]:
        return {
            "summary": {
                "reuse-1m": {
                    "glibc": {"median": {"time": 10.0}},
                    "refmalloc": {"median": {"time": rm}},
                }
            }
        }

    new = {**run(12.0), "targets": [entry]}
    # The earlier run never listed this target; it is evaluated on its medians.
    lines = compare._targets(run(20.0), new)
    assert lines == ["- reuse-1m refmalloc time <= 1.5x glibc: 2.00 (missed) → 1.20 (met)"]
