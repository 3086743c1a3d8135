"""--compare OLD.json: this run's ratios beside an earlier run's, workload by workload.

Both runs' ratios are to glibc without pattern measured in their own run, so a change
of the machine's speed between the runs cancels out; what is left is the change of the
allocator (and the noise, which the spread columns of each run's table show).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.report import SHORT, _table
from bench.summary import target_from_json, target_value
from bench.workloads import Target

#: The metrics compared, with the ratio's name in the summary JSON.
METRICS = {"time": "time", "peak PSS": "peak_pss"}


def _ratio(data: Mapping[str, Any], workload: str, config: str, metric: str) -> float | None:
    cell = data.get("summary", {}).get(workload, {}).get(config)
    if not cell or not cell.get("n"):
        return None
    value = cell.get("ratio_to_glibc", {}).get(metric)
    return float(value) if isinstance(value, int | float) else None


def _cell(old: float | None, new: float | None) -> str:
    if old is None and new is None:
        return "-"
    if old is None or new is None:
        return f"{'-' if old is None else f'{old:.2f}'} → {'-' if new is None else f'{new:.2f}'}"
    return f"{old:.2f} → {new:.2f} (×{new / old:.2f})" if old else f"{old:.2f} → {new:.2f}"


def _configs(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Configurations other than the baseline measured in both runs, in this run's order."""

    def seen(data: Mapping[str, Any]) -> list[str]:
        names: dict[str, None] = {}
        for row in data.get("summary", {}).values():
            names.update(dict.fromkeys(row))
        return list(names)

    before = set(seen(old))
    return [c for c in seen(new) if c in before and c != "glibc"]


def _target_state(data: Mapping[str, Any], workload: str, t: Target) -> str:
    row = data.get("summary", {}).get(workload, {})
    v = target_value(t, {c: cell.get("median", {}) for c, cell in row.items()})
    if v is None:
        return "- (n/a)"
    return f"{v:.2f} ({'met' if v <= t.bound else 'missed'})"


def _targets(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Each of this run's targets, evaluated on both runs' medians: an earlier
    results.json is judged by today's targets, whatever it listed itself."""
    lines = []
    for entry in new.get("targets", []):
        t, w = target_from_json(entry), entry["workload"]
        before, now = _target_state(old, w, t), _target_state(new, w, t)
        lines.append(f"- {w} {entry['target']}: {before} → {now}")
    return lines


def render(old: Mapping[str, Any], new: Mapping[str, Any], old_name: str) -> str:
    """Markdown: for each metric, the ratio to glibc before → now (and now/before)."""
    configs = _configs(old, new)
    workloads = [w for w in new.get("summary", {}) if w in old.get("summary", {})]
    out = [
        f"## Compared with {old_name}",
        "",
        f"Before: {old.get('meta', {}).get('command', '?')}; "
        f"now: {new.get('meta', {}).get('command', '?')}. "
        "Each figure is a ratio to glibc without pattern from its own run; "
        "×N is now over before (below 1: faster or smaller now).",
    ]
    if not configs or not workloads:
        out += ["", "No workload and configuration was measured in both runs."]
        return "\n".join(out) + "\n"
    for title, metric in METRICS.items():
        rows = []
        for w in workloads:
            cells = [_cell(_ratio(old, w, c, metric), _ratio(new, w, c, metric)) for c in configs]
            if any(x != "-" for x in cells):
                rows.append([w, *cells])
        if rows:
            out += ["", f"### {title}", ""]
            out += _table(["workload", *(SHORT.get(c, c) for c in configs)], rows)
    targets = _targets(old, new)
    if targets:
        out += ["", "### Targets (before → now)", "", *targets]
    return "\n".join(out) + "\n"
