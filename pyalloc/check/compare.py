"""Compare runs: separate the program's own nondeterminism from pattern dependence.

Every observable (exit status, stdout, stderr, each output file) is compared between
the runs under the baseline pattern (at least two) and the runs under another
configuration. Whatever varies among runs of the *same* configuration is the
program's own nondeterminism and is excluded: the whole observable when the runs
agree on nothing line by line, else only the lines that vary. What remains and
still differs between the two configurations is a dependence.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pyalloc.check.runner import RunResult

#: Bytes of context shown before and after the first difference.
CONTEXT_BEFORE = 16
CONTEXT_AFTER = 48


@dataclass
class Difference:
    """The first difference of one observable between two configurations."""

    observable: str
    #: Byte offset in the baseline run and in the other run (they can differ when
    #: excluded lines before it have different lengths).
    offset: int
    other_offset: int
    line: int | None  # 1-based, None for the exit status
    context: bytes
    other_context: bytes
    #: Differing bytes right at the difference, from each run.
    bytes_: bytes
    other_bytes: bytes
    #: "raw" (the differing bytes are the pattern bytes themselves), "hex" (they
    #: are the patterns printed in hex), or None.
    pattern_match: str | None = None
    what: str = ""  # a short description ("line count 3 vs 5", "exit 0 vs killed by SIGSEGV")


@dataclass
class ObservableResult:
    name: str
    #: "same", "differs", "excluded" (nondeterministic as a whole), "absent"
    #: (empty or missing in every run).
    state: str
    excluded_lines: list[int] = field(default_factory=list)  # 1-based
    compared_bytes: int = 0
    note: str = ""
    difference: Difference | None = None


def _split_lines(data: bytes) -> list[bytes]:
    return data.splitlines(keepends=True)


def _pattern_match(a: bytes, b: bytes, pa: int | None, pb: int | None) -> str | None:
    if not a or pa is None or pb is None:
        return None
    if all(x == pa for x in a) and all(y == pb for y in b):
        return "raw"
    ha, hb = f"{pa:02x}", f"{pb:02x}"
    ta, tb = a.decode("latin-1").lower(), b.decode("latin-1").lower()
    if ta and tb and set(ta) <= set(ha) and set(tb) <= set(hb):
        return "hex"
    return None


def _first_diff(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def _make_difference(
    name: str,
    a: bytes,
    b: bytes,
    a_off: int,
    b_off: int,
    line: int | None,
    patterns: tuple[int | None, int | None],
    what: str = "",
) -> Difference:
    """A difference starting at a_off in a and b_off in b."""
    # The differing bytes: within the rest of the line, either a same-length run of
    # substituted bytes, or (when the lengths differ, as for printed numbers) what is
    # left once the common suffix is removed.
    rest_a = a[a_off : a_off + 64].split(b"\n", 1)[0]
    rest_b = b[b_off : b_off + 64].split(b"\n", 1)[0]
    if len(rest_a) == len(rest_b):
        n = 0
        while n < len(rest_a) and rest_a[n] != rest_b[n]:
            n += 1
        da, db = rest_a[:n], rest_b[:n]
    else:
        common = 0
        while common < min(len(rest_a), len(rest_b)) and rest_a[-1 - common] == rest_b[-1 - common]:
            common += 1
        da, db = rest_a[: len(rest_a) - common], rest_b[: len(rest_b) - common]
    return Difference(
        observable=name,
        offset=a_off,
        other_offset=b_off,
        line=line,
        context=a[max(0, a_off - CONTEXT_BEFORE) : a_off + CONTEXT_AFTER],
        other_context=b[max(0, b_off - CONTEXT_BEFORE) : b_off + CONTEXT_AFTER],
        bytes_=da,
        other_bytes=db,
        pattern_match=_pattern_match(da, db, *patterns),
        what=what,
    )


def _varying_lines(runs: Sequence[list[bytes]]) -> set[int] | None:
    """Indexes of lines that vary among runs; None when the line counts vary."""
    if len({len(r) for r in runs}) > 1:
        return None
    first = runs[0]
    return {i for i in range(len(first)) if any(r[i] != first[i] for r in runs[1:])}


def compare_bytes(
    name: str,
    base: Sequence[bytes | None],
    other: Sequence[bytes | None],
    patterns: tuple[int | None, int | None] = (None, None),
) -> ObservableResult:
    """Compare one byte observable (stream or file) between two groups of runs."""
    if all(x is None for x in (*base, *other)):
        return ObservableResult(name, "absent")
    if any(x is None for x in base) or any(x is None for x in other):
        present_b = {x is None for x in base}
        present_o = {x is None for x in other}
        if len(present_b) > 1 or len(present_o) > 1:
            return ObservableResult(name, "excluded", note="created in some runs only")
        missing = "baseline" if base[0] is None else "other"
        data = other[0] if base[0] is None else base[0]
        assert data is not None
        a, b = (b"", data) if base[0] is None else (data, b"")
        diff = _make_difference(
            name, a, b, 0, 0, 1, patterns, what=f"missing in the {missing} runs"
        )
        return ObservableResult(name, "differs", difference=diff)
    base_b = [x or b"" for x in base]
    other_b = [x or b"" for x in other]
    if not any(base_b) and not any(other_b):
        return ObservableResult(name, "absent")
    a0, b0 = base_b[0], other_b[0]
    if all(x == a0 for x in base_b) and all(x == b0 for x in other_b):
        if a0 == b0:
            return ObservableResult(name, "same", compared_bytes=len(a0))
        at = _first_diff(a0, b0)
        line = a0.count(b"\n", 0, at) + 1
        return ObservableResult(
            name,
            "differs",
            compared_bytes=len(a0),
            difference=_make_difference(name, a0, b0, at, at, line, patterns),
        )
    base_lines = [_split_lines(x) for x in base_b]
    other_lines = [_split_lines(x) for x in other_b]
    vb = _varying_lines(base_lines)
    vo = _varying_lines(other_lines)
    if vb is None or vo is None:
        return ObservableResult(
            name, "excluded", note="the number of lines varies between runs of the same pattern"
        )
    varying = vb | vo
    la, lb = base_lines[0], other_lines[0]
    stable = [i for i in range(max(len(la), len(lb))) if i not in varying]
    compared = sum(len(la[i]) for i in stable if i < len(la))
    excluded = sorted(i + 1 for i in varying)
    if compared == 0 and len(la) == len(lb):
        return ObservableResult(
            name, "excluded", excluded_lines=excluded, note="every line varies between runs"
        )
    offs_a = _offsets(la)
    offs_b = _offsets(lb)
    for i in stable:
        if i >= len(la) or i >= len(lb):
            # One run has fewer lines: the difference starts where the shorter ends.
            at_a, at_b = offs_a[min(i, len(la))], offs_b[min(i, len(lb))]
            what = f"{len(la)} lines against {len(lb)}"
        elif la[i] != lb[i]:
            col = _first_diff(la[i], lb[i])
            at_a, at_b, what = offs_a[i] + col, offs_b[i] + col, ""
        else:
            continue
        return ObservableResult(
            name,
            "differs",
            excluded_lines=excluded,
            compared_bytes=compared,
            difference=_make_difference(name, a0, b0, at_a, at_b, i + 1, patterns, what=what),
        )
    if compared == 0:
        return ObservableResult(
            name, "excluded", excluded_lines=excluded, note="every line varies between runs"
        )
    return ObservableResult(name, "same", excluded_lines=excluded, compared_bytes=compared)


def _offsets(lines: list[bytes]) -> list[int]:
    out = [0]
    for line in lines:
        out.append(out[-1] + len(line))
    return out


def compare_status(base: Sequence[RunResult], other: Sequence[RunResult]) -> ObservableResult:
    keys_b = {r.status.key() for r in base}
    keys_o = {r.status.key() for r in other}
    if len(keys_b) > 1 or len(keys_o) > 1:
        states = ", ".join(sorted({r.status.describe() for r in (*base, *other)}))
        return ObservableResult("exit status", "excluded", note=f"varies: {states}")
    sa, so = base[0].status, other[0].status
    if sa.key() == so.key():
        return ObservableResult("exit status", "same", note=sa.describe())
    what = f"{sa.describe()} against {so.describe()}"
    diff = Difference(
        "exit status",
        0,
        0,
        None,
        sa.describe().encode(),
        so.describe().encode(),
        b"",
        b"",
        None,
        what,
    )
    return ObservableResult("exit status", "differs", difference=diff)


def compare_runs(
    base: Sequence[RunResult],
    other: Sequence[RunResult],
    patterns: tuple[int | None, int | None] = (None, None),
) -> list[ObservableResult]:
    """Every observable compared between the baseline runs and the other runs."""
    results = [compare_status(base, other)]
    names: list[str] = []
    for run in (*base, *other):
        for key in run.observables():
            if key not in names:
                names.append(key)
    for name in names:
        results.append(
            compare_bytes(
                name,
                [r.observables().get(name) for r in base],
                [r.observables().get(name) for r in other],
                patterns,
            )
        )
    return results
