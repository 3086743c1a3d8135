"""Render a check result: text for people, JSON for machines."""

from __future__ import annotations

import json
import shlex
from typing import Any

from pyalloc.check.compare import Difference, ObservableResult
from pyalloc.check.core import CheckResult, Comparison
from pyalloc.check.reads import where as loc_where

_KIND_TEXT = {
    "uninitialized": "depends on uninitialized heap memory",
    "use-after-free": "depends on freed heap memory (use after free)",
}


def _show(data: bytes) -> str:
    """Bytes as a Python-style literal without the b prefix."""
    return repr(data)[1:]


def _pattern_text(diff: Difference, patterns: tuple[int, int]) -> str:
    a, b = patterns
    if diff.pattern_match == "raw":
        return f"yes: the differing bytes are the pattern bytes 0x{a:02x} / 0x{b:02x}"
    if diff.pattern_match == "hex":
        return f"yes: the differing bytes are the patterns printed in hex ({a:02x} / {b:02x})"
    return "no"


def _labels(comp: Comparison) -> tuple[str, str]:
    a, b = comp.patterns
    if comp.kind == "use-after-free":
        return f"free 0x{a:02x}", f"free 0x{b:02x}"
    return f"0x{a:02x}", f"0x{b:02x}"


def _render_difference(obs: ObservableResult, comp: Comparison, lines: list[str]) -> None:
    diff = obs.difference
    assert diff is not None
    la, lb = _labels(comp)
    if obs.name == "exit status":
        lines.append(f"    exit status: {diff.what}  ({la} / {lb})")
        return
    where = f"byte {diff.offset}"
    if diff.line is not None:
        where += f" (line {diff.line})"
    if diff.other_offset != diff.offset:
        where += f"; byte {diff.other_offset} under {lb}"
    lines.append(
        f"    {obs.name}: first difference at {where}" + (f": {diff.what}" if diff.what else "")
    )
    width = max(len(la), len(lb))
    lines.append(f"      {la:>{width}}: {_show(diff.context)}")
    lines.append(f"      {lb:>{width}}: {_show(diff.other_context)}")
    if diff.bytes_ or diff.other_bytes:
        lines.append(f"      differing bytes: {_show(diff.bytes_)} / {_show(diff.other_bytes)}")
        lines.append(f"      equal to the pattern bytes: {_pattern_text(diff, comp.patterns)}")
    if obs.excluded_lines:
        lines.append(f"      (lines excluded as nondeterministic: {_ranges(obs.excluded_lines)})")


def _ranges(numbers: list[int]) -> str:
    out: list[str] = []
    start = prev = None
    for n in numbers:
        if prev is not None and n == prev + 1:
            prev = n
            continue
        if start is not None:
            out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = n
    if start is not None:
        out.append(str(start) if start == prev else f"{start}-{prev}")
    if len(out) > 12:
        out = [*out[:12], "..."]
    return ", ".join(out)


def render_text(result: CheckResult) -> str:
    cfg = result.config
    lines = [f"refmalloc check: {shlex.join(cfg.argv)}"]
    runs = ", ".join(f"{r.spec.label} {r.status.describe()} {r.seconds:.2f}s" for r in result.runs)
    lines.append(
        f"  patterns 0x{cfg.pattern:02x} (baseline, run at least twice) and "
        f"0x{cfg.other_pattern:02x}"
        + (" and 0x00 (run R1)" if any(c.patterns[1] == 0 for c in result.comparisons) else "")
        + f"; {len(result.runs)} runs in {result.seconds:.2f}s"
        + ("" if result.aslr_disabled else "; ASLR could not be disabled")
    )
    lines.append(f"  runs: {runs}")
    for note in result.notes:
        lines.append(f"  note: {note}")
    for comp in result.comparisons:
        title = (
            "use-after-free differential"
            if comp.kind == "use-after-free"
            else "pattern differential"
        )
        la, lb = _labels(comp)
        lines.append(f"  {title} ({la} against {lb}):")
        for obs in comp.observables:
            if obs.state == "same":
                extra = (
                    f", {obs.compared_bytes} bytes compared" if obs.name != "exit status" else ""
                )
                if obs.excluded_lines:
                    extra += f", lines {_ranges(obs.excluded_lines)} excluded as nondeterministic"
                detail = f" ({obs.note})" if obs.note else ""
                lines.append(f"    {obs.name}: same{detail}{extra}")
            elif obs.state == "excluded":
                detail = obs.note or "nondeterministic"
                lines.append(
                    f"    {obs.name}: excluded, the program's own nondeterminism ({detail})"
                )
            elif obs.state == "differs":
                _render_difference(obs, comp, lines)
        for name in comp.unconfirmed:
            lines.append(
                f"    {name}: a first difference did not repeat: treated as nondeterminism"
            )
        if comp.differences:
            names = ", ".join(o.name for o in comp.differences)
            lines.append(f"  FINDING: {names} {_KIND_TEXT[comp.kind]}")
    reads = result.reads
    if reads is not None and reads.requested:
        if reads.tracked:
            lines.append(
                f"  reads (run R1, blocks of a page or more): {reads.first_touches} pages "
                f"first touched, {reads.reads_before_write} first read"
                + (f", {reads.dropped} findings not kept" if reads.dropped else "")
            )
        else:
            lines.append(f"  reads: not tracked ({reads.reason})")
        for f in reads.findings:
            alloc = f"allocated at {loc_where(f.alloc)}" if f.alloc else "allocation site unknown"
            lines.append(
                f"  FINDING: read-before-write: {f.read_text()}; block of {f.block_size} "
                f"bytes {alloc}, page at offset {f.page}"
                + (f" (and {f.count - 1} more pages)" if f.count > 1 else "")
            )
    elif reads is not None:
        lines.append("  reads: not tracked (--no-reads)")
    if result.locate is not None:
        loc = result.locate
        lines.append(f"  locate: {loc.sites_total} allocation sites logged, {loc.runs} runs")
        for site in loc.sites:
            lines.append(f"    site: {site.describe()}")
        if loc.note:
            lines.append(f"    note: {loc.note}")
    verdict = {
        0: "clean: no observed behaviour depends on the pattern",
        1: "DEPENDENCE found",
        3: "inconclusive: the program is nondeterministic on its own and nothing "
        "deterministic is left to compare",
    }[result.verdict]
    if result.verdict == 3 and result.runs and all(r.status.timed_out for r in result.runs):
        verdict = "inconclusive: every run timed out and nothing else was observed"
    lines.append(f"verdict: {verdict} (exit {result.verdict})")
    return "\n".join(lines) + "\n"


def _diff_json(diff: Difference | None) -> dict[str, Any] | None:
    if diff is None:
        return None

    def text(b: bytes) -> str:
        return b.decode("utf-8", "backslashreplace")

    return {
        "offset": diff.offset,
        "other_offset": diff.other_offset,
        "line": diff.line,
        "context": text(diff.context),
        "other_context": text(diff.other_context),
        "context_hex": diff.context.hex(),
        "other_context_hex": diff.other_context.hex(),
        "bytes_hex": diff.bytes_.hex(),
        "other_bytes_hex": diff.other_bytes.hex(),
        "pattern_bytes": diff.pattern_match,
        "what": diff.what or None,
    }


def to_json(result: CheckResult) -> dict[str, Any]:
    cfg = result.config
    out: dict[str, Any] = {
        "command": list(cfg.argv),
        "verdict": result.verdict_name,
        "exit_code": result.verdict,
        "patterns": [cfg.pattern, cfg.other_pattern],
        "free_patterns": None,
        "aslr_disabled": result.aslr_disabled,
        "seconds": round(result.seconds, 3),
        "runs": [
            {
                "label": r.spec.label,
                "options": {k: v for k, v in r.spec.options.items()},
                "status": r.status.as_json(),
                "seconds": round(r.seconds, 3),
            }
            for r in result.runs
        ],
        "comparisons": [],
        "findings": [],
        "notes": result.notes,
    }
    for comp in result.comparisons:
        if comp.kind == "use-after-free":
            out["free_patterns"] = list(comp.patterns)
        out["comparisons"].append(
            {
                "kind": comp.kind,
                "patterns": list(comp.patterns),
                "confirmed": comp.confirmed,
                "unconfirmed": comp.unconfirmed,
                "observables": [
                    {
                        "name": o.name,
                        "state": o.state,
                        "excluded_lines": o.excluded_lines,
                        "compared_bytes": o.compared_bytes,
                        "note": o.note or None,
                        "difference": _diff_json(o.difference),
                    }
                    for o in comp.observables
                ],
            }
        )
        for o in comp.differences:
            out["findings"].append(
                {
                    "kind": comp.kind,
                    "patterns": list(comp.patterns),
                    "observable": o.name,
                    "difference": _diff_json(o.difference),
                }
            )
    if result.reads is not None:
        out["reads"] = result.reads.as_json()
        for f in result.reads.findings:
            out["findings"].append(f.as_json())
    if result.locate is not None:
        out["locate"] = {
            "sites_logged": result.locate.sites_total,
            "runs": result.locate.runs,
            "sites": [s.as_json() for s in result.locate.sites],
            "note": result.locate.note or None,
        }
    return out


def render_json(result: CheckResult) -> str:
    return json.dumps(to_json(result), indent=2) + "\n"
