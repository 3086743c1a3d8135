"""Unit test of the option parser (allocator/base/config.c) through tests/c/test_config.c,
and of pyalloc's reading of the library's tables against what the C compiler makes of
them: options.inc and refmalloc.h's REFMALLOC_STATS are declared once, so both sides
must agree on every key, type, default, range and counter."""

from __future__ import annotations

import subprocess
from pathlib import Path

import click
import pytest
from rmhelpers import INCLUDE, REPO

from pyalloc import tables
from pyalloc.options import OPTIONS, format_byte, param_type, parse_byte, parse_size

SRC = REPO / "allocator" / "base"
PROGRAM = REPO / "tests" / "c" / "test_config.c"


@pytest.fixture(scope="module")
def parser(tmp_path_factory: pytest.TempPathFactory) -> Path:
    exe = tmp_path_factory.mktemp("config-unit") / "test_config"
    cmd = [
        "gcc",
        "-std=c11",
        "-D_GNU_SOURCE",
        "-O1",
        "-g",
        "-Wall",
        "-Wextra",
        "-Werror",
        "-Wshadow",
        f"-I{SRC}",
        f"-I{INCLUDE}",
        "-o",
        str(exe),
        str(PROGRAM),
        *(str(SRC / name) for name in ("config.c", "out.c", "os.c")),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"
    return exe


def parse(parser: Path, options: str) -> tuple[dict[str, str], list[str]]:
    """The configuration after the defaults and ``options``, and the stderr lines."""
    result = subprocess.run(
        [str(parser), "parse", options], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    values = dict(line.split("=", 1) for line in result.stdout.splitlines())
    return values, result.stderr.splitlines()


def accepted(parser: Path, key: str, value: str) -> bool:
    values, lines = parse(parser, f"{key}={value}")
    assert len(lines) <= 1, lines
    return not lines


# ---- the tables: pyalloc reads what the compiler compiles -------------------------


def test_python_reads_the_tables_the_compiler_sees(parser: Path) -> None:
    out = subprocess.run([str(parser), "table"], capture_output=True, text=True, check=True)
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    c_options = [tuple(row[1:]) for row in rows if row[0] == "option"]
    py_options = [
        (
            o.key,
            o.type,
            o.default,
            f"{o.low}-{o.high}" if o.low else "",
            "" if o.shown in (o.default, "none") else o.shown,
            o.help,
        )
        for o in tables.options()
    ]
    assert py_options == c_options
    c_stats = [tuple(row[1:]) for row in rows if row[0] == "stat"]
    py_stats = [(s.name, s.kind, s.text, str(8 * (1 + i))) for i, s in enumerate(tables.stats())]
    assert py_stats == c_stats
    (size,) = [row[1] for row in rows if row[0] == "stats_size"]
    assert int(size) == 8 * (1 + len(tables.stats()))


def _canonical_default(option: tables.Option) -> str:
    if option.type == "BYTE":
        return format_byte(parse_byte(option.default))
    if option.type == "BYTE_OFF":
        return "off" if option.default == "off" else format_byte(parse_byte(option.default))
    if option.type in ("SIZE", "COUNT"):
        return str(parse_size(option.default))
    return option.default


def test_defaults_parse_alike_in_c_and_python(parser: Path) -> None:
    values, lines = parse(parser, "")
    assert lines == []
    assert values == {o.key: _canonical_default(o) for o in tables.options()}


def _edges(option: tables.Option) -> list[tuple[str, bool]]:
    low = parse_size(option.low)
    cases = [(option.low, True)]
    if low > 0:
        cases.append((str(low - 1), False))
    if option.high:
        high = parse_size(option.high)
        cases += [(option.high, True), (str(high + 1), False)]
    return cases


RANGED = [o.key for o in tables.options() if o.low]


@pytest.mark.parametrize("key", RANGED)
def test_range_edges_agree_between_library_and_cli(parser: Path, key: str) -> None:
    option = OPTIONS[key]
    for value, ok in _edges(option):
        assert accepted(parser, key, value) is ok, (key, value)
        try:
            param_type(key).convert(value, None, None)
            cli_ok = True
        except click.BadParameter:
            cli_ok = False
        assert cli_ok is ok, (key, value)


# ---- the parser ------------------------------------------------------------------


def test_last_valid_value_wins_and_a_bad_one_keeps_it(parser: Path) -> None:
    values, lines = parse(parser, "pattern=0x11,pattern=0x22,pattern=zz")
    assert values["pattern"] == "0x22"
    assert len(lines) == 1 and lines[0].endswith("keeping pattern=0x22"), lines
    values, lines = parse(parser, "threshold=0")
    assert values["threshold"] == str(128 << 10)
    assert lines == [
        "refmalloc: REFMALLOC_OPTIONS: bad value '0' for 'threshold' "
        "(expected a size between 1 and 1t); using the default"
    ]


@pytest.mark.parametrize(
    ("entry", "key", "value"),
    [
        ("threshold=64K", "threshold", str(64 << 10)),
        ("cache=0", "cache", "0"),
        ("reserve=64t", "reserve", str(64 << 40)),
        ("max_mappings=1k", "max_mappings", "1024"),
        ("free_pattern=7", "free_pattern", "0x07"),
        ("free_pattern=off", "free_pattern", "off"),
        ("free_pattern=no", "free_pattern", "off"),
        ("refpages=off", "refpages", "0"),
        ("mremap=false", "mremap", "0"),
        ("mte=yes", "mte", "1"),
        ("verbose=0x2", "verbose", "2"),
        ("site_pattern=0XfF", "site_pattern", "0xff"),
        ("sites=/tmp/s-%p", "sites", "/tmp/s-%p"),
        ("report=" + "r" * 1023, "report", "r" * 1023),
    ],
)
def test_values_accepted(parser: Path, entry: str, key: str, value: str) -> None:
    values, lines = parse(parser, entry)
    assert lines == [] and values[key] == value


@pytest.mark.parametrize(
    "entry",
    [
        "threshold=18446744073709551616",  # 2**64
        "threshold=17179869184g",  # 2**64 bytes
        "cache=1.5m",
        "cache=-1",
        "cache=12q",
        "pattern=0x",
        "pattern=0x100",
        "free_pattern=on",
        "refpages=2",
        "verbose=3",
        "report=",
        "report=" + "r" * 1024,
        "max_mappings=15",
    ],
)
def test_values_refused_with_one_line(parser: Path, entry: str) -> None:
    key = entry.split("=", 1)[0]
    values, lines = parse(parser, entry)
    default, _ = parse(parser, "")
    assert values == default
    assert len(lines) == 1 and f"for '{key}' (expected " in lines[0], lines


def test_unknown_keys_and_entries_without_value(parser: Path) -> None:
    values, lines = parse(parser, ",bogus=1,,pattern,pattern=0x33,")
    assert values["pattern"] == "0x33"
    assert len(lines) == 2, lines
    known = ", ".join(OPTIONS)
    assert lines[0] == (
        f"refmalloc: REFMALLOC_OPTIONS: unknown option 'bogus' ignored (known: {known})"
    )
    assert lines[1] == "refmalloc: REFMALLOC_OPTIONS: 'pattern' is not key=value; ignored"
