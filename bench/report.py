"""Tables of the run, in Markdown (the README section is a copy of them)."""

from __future__ import annotations

from collections.abc import Sequence

from bench.checkgroup import CHECK_GOAL, MODE_TEXT, MODES
from bench.configs import BASELINE
from bench.suite import RunResult
from bench.summary import Cell, Verdict, check_rows

SHORT = {
    "glibc": "glibc",
    "glibc-perturb": "perturb",
    "glibc-perturb-notc": "perturb-notc",
    "jemalloc": "jemalloc",
    "jemalloc-junk": "je-junk",
    "mimalloc": "mimalloc",
    "tcmalloc": "tcmalloc",
    "scudo": "scudo",
    "scudo-pattern": "scudo-fill",
    "refmalloc": "**rm**",
    "refmalloc+jemalloc": "rm+je",
    "refmalloc+mimalloc": "rm+mi",
}


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    align = ["---"] + ["---:"] * (len(head) - 1)
    return [_row(head), _row(align)] + [_row(r) for r in rows]


def _ratio_cell(cell: Cell | None, metric: str, skipped: bool) -> str:
    if skipped:
        return "skip"
    if cell is None:
        return "-"
    if cell.n == 0:
        return "ERR"
    r = cell.ratio.get(metric)
    return "-" if r is None else (f"{r:.2f}" if r < 100 else f"{r:.0f}")


def ratio_table(
    result: RunResult, cells: dict[str, dict[str, Cell]], metric: str, unit: str
) -> list[str]:
    names = [c.name for c in result.configs]
    scale = 1e6 if metric == "time" else 1024.0
    head = ["workload", f"glibc {unit}"] + [SHORT.get(n, n) for n in names]
    rows = []
    for w in result.workloads:
        if w.group == "check":
            continue  # its own line under the targets
        row = cells.get(w.name, {})
        base = row.get(BASELINE)
        bval = base.median.get(metric) if base else None
        if not row:
            continue
        if metric != "time" and all(c.median.get(metric) is None for c in row.values()):
            continue
        line = [w.name, "-" if bval is None else _num(bval / scale)]
        for n in names:
            line.append(_ratio_cell(row.get(n), metric, f"{w.name}/{n}" in result.skipped))
        rows.append(line)
    return _table(head, rows)


def _num(v: float) -> str:
    """Three significant digits at most, no exponent."""
    if v >= 100:
        return f"{v:.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 0.1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _byte(v: object) -> str:
    if not isinstance(v, int):
        return "?"
    return {-2: "mixed", -3: "fail"}.get(v, f"0x{v:02x}" if v >= 0 else "?")


def probe_table(result: RunResult) -> list[str]:
    keys = (
        ("small_fresh", "small fresh"),
        ("small_reused", "small reused"),
        ("large_fresh", "8 MiB fresh"),
        ("large_reused", "8 MiB reused"),
        ("realloc_tail", "realloc tail"),
        ("realloc_tail_large", "large realloc tail"),
    )
    rows = []
    for c in result.configs:
        p = result.probes.get(c.name, {})
        if "error" in p:
            rows.append([c.name, f"error: {p['error'][:60]}"] + [""] * (len(keys) - 1))
        else:
            rows.append([c.name] + [_byte(p.get(k)) for k, _ in keys])
    return _table(["config"] + [t for _, t in keys], rows)


def scale_table(result: RunResult, cells: dict[str, dict[str, Cell]]) -> list[str]:
    rows = []
    for w in result.workloads:
        if w.group != "scale":
            continue
        for c in result.configs:
            cell = cells.get(w.name, {}).get(c.name)
            if f"{w.name}/{c.name}" in result.skipped or cell is None or cell.n == 0:
                continue
            med = cell.median
            rows.append(
                [
                    w.name,
                    c.name,
                    f"{med.get('alloc_ns_per_block', 0) / 1e3:.1f}",
                    f"{med.get('maps_before', 0):.0f} → {med.get('maps_live', 0):.0f}",
                    f"{med.get('peak_anon', 0) / 1024:.0f}",
                    f"{med.get('peak_pss', 0) / 1024:.0f}",
                    f"{med['rm_pattern_bytes'] / 2**20:.0f}" if "rm_pattern_bytes" in med else "-",
                ]
            )
    return _table(
        [
            "workload",
            "config",
            "µs per malloc",
            "maps lines before → live",
            "anon MiB",
            "pss MiB",
            "pattern memfd MiB",
        ],
        rows,
    )


def _found(v: bool | None, errors: int | None = None) -> str:
    text = {True: "found", False: "clean", None: "mixed"}[v]
    return text if errors is None else f"{text} ({errors})"


def check_table(result: RunResult, cells: dict[str, dict[str, Cell]]) -> list[str]:
    """The check group: each program's modes as ratios to its plain run (bench/checkgroup.py)."""
    rows = []
    for r in check_rows(result, cells):
        line = [r["workload"], r["expect"] or "-"]
        plain = r["plain_time_ns"]
        line.append("-" if plain is None else _num(plain / 1e6))
        for mode in MODES[1:]:
            skipped = f"{r['workload']}/{mode}" in result.skipped
            line.append(_ratio_cell(cells[r["workload"]].get(mode), "time", skipped))
        cpu = r["cpu_ratio"].get("check")
        line.append("-" if cpu is None else _num(cpu))
        added = r["check_added_ns"]
        line.append("-" if added is None else _num(added / 1e6))
        goal = r["goal_met"]
        line.append({True: "met", False: "**MISSED**", None: "n/a"}[goal])
        for mode in ("check", "memcheck"):
            if f"{r['workload']}/{mode}" in result.skipped or mode not in r["ratio"]:
                line.append("skip" if mode not in cells[r["workload"]] else "ERR")
                continue
            errors = r["memcheck_errors"] if mode == "memcheck" else None
            text = _found(r["found"][mode], errors)
            agree = r["agree"][mode]
            line.append(text + {True: " ✓", False: " **✗**", None: ""}[agree])
        rows.append(line)
    if not rows:
        return []
    head = ["program", "expect", "plain ms", "rm run", "check", "no-reads", "memcheck"]
    head += ["check CPU", "check +ms", f"check ≤{CHECK_GOAL:g}x"]
    head += ["check verdict", "memcheck verdict (errors)"]
    return _table(head, rows)


def targets_list(vs: Sequence[Verdict]) -> list[str]:
    out = []
    for v in vs:
        verdict = {True: "met", False: "**MISSED**", None: "not measured"}[v.met]
        value = "-" if v.value is None else _num(v.value)
        out.append(f"- {v.workload}: {v.target.describe()}: {value} — {verdict}")
    met = sum(1 for v in vs if v.met)
    missed = sum(1 for v in vs if v.met is False)
    out.append(f"- {met} met, {missed} missed, {len(vs) - met - missed} not measured")
    return out


def render(
    result: RunResult,
    cells: dict[str, dict[str, Cell]],
    vs: Sequence[Verdict],
    command: str,
) -> str:
    meta = result.meta
    host = meta["host"]
    out = [
        f"Command: `{command}` — {meta['reps']} repetition(s), medians; "
        f"{meta['duration_s']:.0f} s; {host['cpus']} CPUs, load average "
        f"{host['loadavg_start'][0]:.2f} at start, {host['loadavg_end'][0]:.2f} at end "
        f"(max {host['loadavg_max1']:.2f}).",
        "",
        "Configurations: "
        + "; ".join(
            f"{SHORT.get(c.name, c.name)} = {meta['configs'][c.name]['env']}"
            for c in result.configs
        )
        + ". rm = refmalloc.",
    ]
    if result.skipped:
        out.append("")
        out.append("Skipped: " + "; ".join(f"{k}: {v}" for k, v in result.skipped.items()))
    out += [
        "",
        "Time, ratio to glibc without pattern in the same run (lower is better):",
        "",
    ]
    out += ratio_table(result, cells, "time", "ms")
    out += [
        "",
        "Peak anonymous memory (smaps_rollup `Anonymous:`), ratio to glibc:",
        "",
    ]
    out += ratio_table(result, cells, "peak_anon", "MiB")
    out += ["", "Peak PSS (smaps_rollup `Pss:`), ratio to glibc:", ""]
    out += ratio_table(result, cells, "peak_pss", "MiB")
    scale = scale_table(result, cells)
    if len(scale) > 2:
        out += ["", "Scale: live sparse blocks (medians):", ""] + scale
    out += [
        "",
        "What a program reads in memory it never wrote (pattern coverage; 0xaa = refmalloc's "
        "pattern, 0x55 = MALLOC_PERTURB_=170, 0xa5 = jemalloc junk, 0xab = Scudo "
        "pattern_fill_contents; mixed = stale data):",
        "",
    ]
    out += probe_table(result)
    out += ["", "Targets (to glibc without pattern unless named; reported, not asserted):", ""]
    out += targets_list(vs)
    check = check_table(result, cells)
    if check:
        out += [
            "",
            "`refmalloc check` (with reads) against one plain run of the same program, wall "
            "time, ratios to the plain run (medians; measured interleaved). Columns: "
            + "; ".join(f"{m} = {MODE_TEXT[m]}" for m in MODES)
            + ". Verdicts: found = reported an uninitialized read (check: exit 1; memcheck: "
            "errors, their count in brackets), ✓ = as the program's expectation; check CPU = "
            "its CPU time (all runs, and Python) over the plain run's; check +ms = "
            f"check's median minus the plain run's; the {CHECK_GOAL:g}x goal is set on the "
            "real programs (the corpus runs for milliseconds: its ratio is check's start-up):",
            "",
        ] + check
    warned = sorted(
        {f"{m.workload} / {m.config}: {w[:200]}" for m in result.measurements for w in m.warnings}
    )
    if warned:
        out += ["", "Warnings:"] + [f"- {w}" for w in warned[:40]]
    errors = [m for m in result.measurements if m.error]
    if errors:
        out += ["", f"{len(errors)} measurement(s) failed:"]
        seen = set()
        for m in errors:
            key = (m.workload, m.config)
            if key not in seen:
                seen.add(key)
                out.append(f"- {m.workload} / {m.config}: {m.error[:200]}")
    return "\n".join(out) + "\n"
