"""Medians over repetitions, ratios against glibc from the same run, and the
verdict on each target (reported, never asserted)."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Mapping
from typing import Any

from bench import checkgroup
from bench.checkgroup import MODES
from bench.configs import BASELINE
from bench.runner import Measurement
from bench.suite import RunResult
from bench.workloads import Target

METRICS = ("time", "peak_anon", "peak_pss", "exit_anon", "exit_pss")


@dataclasses.dataclass
class Cell:
    """Medians of one workload under one configuration."""

    n: int
    errors: list[str]
    median: dict[str, float]
    low: dict[str, float]
    high: dict[str, float]
    ratio: dict[str, float]  # against the baseline's median, same run

    def spread(self, metric: str = "time") -> float | None:
        m = self.median.get(metric)
        if not m or self.n < 2:
            return None
        return (self.high[metric] - self.low[metric]) / m


@dataclasses.dataclass
class Verdict:
    workload: str
    target: Target
    value: float | None
    met: bool | None  # None: not measured


def _numeric_keys(ms: list[Measurement]) -> set[str]:
    keys = set(METRICS)
    for m in ms:
        keys |= {k for k, v in m.extra.items() if isinstance(v, int | float)}
        stats = m.extra.get("rm_stats")
        if isinstance(stats, dict):
            keys |= {f"rm_{k}" for k in stats}
    return keys


def _value(m: Measurement, key: str) -> float | None:
    if key.startswith("rm_"):
        stats = m.extra.get("rm_stats") or {}
        v = stats.get(key[3:])
        return float(v) if isinstance(v, int | float) else None
    v = m.value(key)
    return None if v is None else float(v)


def summarize(result: RunResult) -> dict[str, dict[str, Cell]]:
    cells: dict[str, dict[str, Cell]] = {}
    for w in result.workloads:
        row: dict[str, Cell] = {}
        columns = MODES if w.group == "check" else [c.name for c in result.configs]
        for name in columns:
            ms = [m for m in result.measurements if m.workload == w.name and m.config == name]
            if not ms:
                continue
            good = [m for m in ms if m.ok]
            med, lo, hi = {}, {}, {}
            for key in _numeric_keys(good):
                vals = [v for v in (_value(m, key) for m in good) if v is not None]
                if vals:
                    med[key] = statistics.median(vals)
                    lo[key], hi[key] = min(vals), max(vals)
            row[name] = Cell(len(good), [m.error for m in ms if m.error], med, lo, hi, {})
        base = row.get(BASELINE)
        for cell in row.values():
            for key in (*METRICS, "cpu_ns"):
                b = base.median.get(key) if base else None
                v = cell.median.get(key)
                if b and v is not None and b > 0:
                    cell.ratio[key] = v / b
        cells[w.name] = row
    return cells


def target_value(t: Target, medians: Mapping[str, Mapping[str, float]]) -> float | None:
    """The value t bounds, from one workload's medians by configuration (this
    run's, or an earlier results.json's: --compare)."""
    own = medians.get(t.config, {})
    value = own.get(t.metric)
    if value is None:
        return None
    if t.baseline is None:
        per = own.get(t.per) if t.per else 1.0
        return value / per * t.scale if per else None
    names = t.baseline if isinstance(t.baseline, tuple) else (t.baseline,)
    bases = [b for b in (medians.get(n, {}).get(t.metric) for n in names) if b]
    if not bases:
        return None
    base = min(bases)
    if t.plus_pattern:
        # value <= bound x base + pattern, as a ratio to be read against the
        # bound: over base + pattern / bound (peak_pss is in KiB).
        base += own.get("rm_pattern_bytes", 0.0) / 1024 / t.bound
    return value / base


def target_from_json(entry: Mapping[str, Any]) -> Target:
    fields = {f.name: entry[f.name] for f in dataclasses.fields(Target) if f.name in entry}
    if isinstance(fields.get("baseline"), list):
        fields["baseline"] = tuple(fields["baseline"])
    return Target(**fields)


def verdicts(result: RunResult, cells: dict[str, dict[str, Cell]]) -> list[Verdict]:
    out = []
    for w in result.workloads:
        medians = {c: cell.median for c, cell in cells.get(w.name, {}).items()}
        for t in w.targets:
            value = target_value(t, medians)
            out.append(Verdict(w.name, t, value, None if value is None else value <= t.bound))
    return out


def check_rows(result: RunResult, cells: dict[str, dict[str, Cell]]) -> list[dict[str, Any]]:
    """The check group, row by row: ratios to the plain run and what each tool found."""
    rows = []
    for w in result.workloads:
        if w.group != "check" or w.name not in cells:
            continue
        row = cells[w.name]
        expect = checkgroup.expected(w)
        found: dict[str, bool | None] = {}
        for mode in ("check", "check-noreads", "memcheck"):
            seen = {
                bool(m.extra.get("found"))
                for m in result.measurements
                if m.workload == w.name and m.config == mode and m.ok
            }
            found[mode] = seen.pop() if len(seen) == 1 else None  # None: not run, or mixed
        errors = [
            int(m.extra.get("vg_errors", 0))
            for m in result.measurements
            if m.workload == w.name and m.config == "memcheck" and m.ok
        ]
        ratio = {mode: row[mode].ratio.get("time") for mode in row if row[mode].n}
        check = ratio.get("check")
        added = None
        if "check" in row and BASELINE in row and row["check"].n and row[BASELINE].n:
            added = row["check"].median["time"] - row[BASELINE].median["time"]
        rows.append(
            {
                "workload": w.name,
                "expect": expect,
                "plain_time_ns": row[BASELINE].median.get("time") if BASELINE in row else None,
                "ratio": ratio,
                "cpu_ratio": {m: row[m].ratio.get("cpu_ns") for m in row if row[m].n},
                "goal": checkgroup.CHECK_GOAL,
                "check_added_ns": added,
                "goal_met": None
                if check is None or not w.targets
                else check <= checkgroup.CHECK_GOAL,
                "found": found,
                "memcheck_errors": max(errors) if errors else None,
                "agree": {
                    m: None
                    if expect is None or found[m] is None
                    else found[m] == (expect == "reads")
                    for m in ("check", "memcheck")
                },
            }
        )
    return rows


def to_json(
    result: RunResult, cells: dict[str, dict[str, Cell]], vs: list[Verdict]
) -> dict[str, Any]:
    return {
        "meta": result.meta,
        "skipped": result.skipped,
        "probes": result.probes,
        "summary": {
            w: {
                c: {
                    "n": cell.n,
                    "errors": cell.errors,
                    "median": cell.median,
                    "min": cell.low,
                    "max": cell.high,
                    "ratio_to_glibc": cell.ratio,
                }
                for c, cell in row.items()
            }
            for w, row in cells.items()
        },
        "targets": [
            {
                "workload": v.workload,
                "target": v.target.describe(),
                **dataclasses.asdict(v.target),
                "value": v.value,
                "met": v.met,
            }
            for v in vs
        ],
        "check": check_rows(result, cells),
        "measurements": [dataclasses.asdict(m) for m in result.measurements],
    }
