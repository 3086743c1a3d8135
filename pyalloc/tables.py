"""The library's own tables, read from its sources: the options and the counters.

Each is declared once, on the C side: the options in ``allocator/base/options.inc``
(``RM_OPTION(key, field, type, default, range, shown, help)``), the counters in the
``REFMALLOC_STATS(X)`` list of ``allocator/include/refmalloc.h``. The wheel carries
both files inside the package (CMake installs them next to librefmalloc.so); a source
checkout reads them where they are. ``tests/test_config_unit.py`` checks that this
reading agrees with what the C compiler makes of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Final

_PACKAGE: Final = Path(__file__).resolve().parent
#: file name -> its place in a source checkout (relative to the repository root).
_SOURCES: Final = {
    "options.inc": "allocator/base/options.inc",
    "refmalloc.h": "allocator/include/refmalloc.h",
}

_TOKEN: Final = re.compile(
    r"""
    (?P<space>\s+|\\\n|/\*.*?\*/|//[^\n]*)
    | (?P<string>"(?:[^"\\\n]|\\.)*")
    | (?P<word>[A-Za-z0-9_.]+)
    | (?P<other>.)
    """,
    re.S | re.X,
)


class TableError(RuntimeError):
    """A table source is missing or not in the expected form."""


def source(name: str) -> Path:
    """The file ``name`` of _SOURCES: in the installed package, else in the checkout."""
    for path in (_PACKAGE / name, _PACKAGE.parent / _SOURCES[name]):
        if path.is_file():
            return path
    raise TableError(
        f"{name} not found in {_PACKAGE} nor at {_PACKAGE.parent / _SOURCES[name]}: "
        "reinstall refmalloc (`pip install .`)"
    )


def _unquote(literal: str) -> str:
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


def macro_calls(text: str, name: str) -> list[tuple[str, ...]]:
    """The argument lists of every ``name(...)`` in C text, outside comments.

    Arguments are identifiers, numbers or string literals (adjacent literals are
    joined, as the compiler does); anything else is a TableError.
    """
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text) if m.lastgroup != "space"]
    calls: list[tuple[str, ...]] = []
    i = 0
    while i < len(tokens):
        if tokens[i] != ("word", name) or i + 1 == len(tokens) or tokens[i + 1][1] != "(":
            i += 1
            continue
        i += 2
        args: list[str] = []
        current: str | None = None
        while i < len(tokens) and tokens[i][1] != ")":
            kind, value = tokens[i]
            if value == ",":
                args.append(current if current is not None else "")
                current = None
            elif kind == "string":
                current = (current or "") + _unquote(value)
            elif kind == "word" and current is None:
                current = value
            else:
                raise TableError(f"{name}(...): unexpected {value!r} after {args!r}")
            i += 1
        if i == len(tokens):
            raise TableError(f"{name}(...): no closing parenthesis after {args!r}")
        args.append(current if current is not None else "")
        calls.append(tuple(args))
        i += 1
    return calls


@dataclass(frozen=True)
class Option:
    """One REFMALLOC_OPTIONS key, as options.inc declares it."""

    key: str
    type: str  # BYTE, BYTE_OFF, SIZE, COUNT, BOOL, INT or PATH
    default: str  # in option syntax; "" for no path
    low: str  # the range's bounds in option syntax ("" when unbounded)
    high: str
    shown: str  # how the documentation states the default
    help: str


@dataclass(frozen=True)
class Stat:
    """One counter of struct refmalloc_stats."""

    name: str
    kind: str  # EVENT, GAUGE or FALLBACK
    text: str


OPTION_TYPES: Final = ("BYTE", "BYTE_OFF", "SIZE", "COUNT", "BOOL", "INT", "PATH")
STAT_KINDS: Final = ("EVENT", "GAUGE", "FALLBACK")


@cache
def options() -> tuple[Option, ...]:
    """The options, in the order of options.inc."""
    found: list[Option] = []
    for args in macro_calls(source("options.inc").read_text(), "RM_OPTION"):
        if len(args) != 7 or args[2] not in OPTION_TYPES:
            raise TableError(f"options.inc: malformed entry {args!r}")
        key, _field, kind, default, span, shown, text = args
        low, _, high = span.partition("-")
        if span and not low:
            raise TableError(f"options.inc: {key}: malformed range {span!r}")
        shown = shown or default or "none"
        found.append(Option(key, kind, default, low, high, shown, text))
    if not found:
        raise TableError("options.inc: no RM_OPTION entries")
    return tuple(found)


@cache
def stats() -> tuple[Stat, ...]:
    """The counters of struct refmalloc_stats after ``version``, in struct order."""
    text = source("refmalloc.h").read_text()
    match = re.search(r"#define REFMALLOC_STATS\(X\)((?:[^\n]*\\\n)*[^\n]*)", text)
    if match is None:
        raise TableError("refmalloc.h: no REFMALLOC_STATS(X) list")
    found = [Stat(*args) for args in macro_calls(match.group(1), "X") if len(args) == 3]
    if not found or any(s.kind not in STAT_KINDS for s in found):
        raise TableError("refmalloc.h: malformed REFMALLOC_STATS(X) list")
    return tuple(found)


@cache
def stats_version() -> int:
    """REFMALLOC_STATS_VERSION: the layout of struct refmalloc_stats."""
    text = source("refmalloc.h").read_text()
    match = re.search(r"^#define REFMALLOC_STATS_VERSION (\d+)$", text, re.M)
    if match is None:
        raise TableError("refmalloc.h: no REFMALLOC_STATS_VERSION")
    return int(match.group(1))
