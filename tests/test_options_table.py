"""The options table (allocator/base/options.inc) is the one declaration of every
REFMALLOC_OPTIONS key: the README table, `refmalloc run`'s flags and their help must
agree with it."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from rmhelpers import REPO

from pyalloc import tables
from pyalloc.cli import main
from pyalloc.options import KNOWN_KEYS, OPTIONS, flag_help


def readme_rows() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("\n## REFMALLOC_OPTIONS\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if line.startswith("| `")
    ]
    assert rows, "no options table in the README"
    return rows


def readme_value(option: tables.Option) -> str:
    """How the README's value column writes an option's type."""
    if option.type == "INT":
        low, high = int(option.low), int(option.high)
        return ", ".join(f"`{n}`" for n in range(low, high + 1))
    return {
        "BYTE": "BYTE",
        "BYTE_OFF": "BYTE or `off`",
        "SIZE": "SIZE",
        "COUNT": "N",
        "BOOL": "`0`, `1`",
        "PATH": "PATH",
    }[option.type]


def test_readme_table_is_the_options_table() -> None:
    rows = readme_rows()
    assert [row[0] for row in rows] == [f"`{key}`" for key in KNOWN_KEYS]
    for key, value, default, _meaning in rows:
        option = OPTIONS[key.strip("`")]
        assert value == readme_value(option), key
        assert default.replace("`", "") == option.shown, key


def test_known_keys_are_the_library_table() -> None:
    text = (REPO / "allocator" / "base" / "options.inc").read_text()
    assert tuple(re.findall(r"^RM_OPTION\((\w+),", text, re.M)) == KNOWN_KEYS
    assert len(KNOWN_KEYS) == 20


@pytest.fixture(scope="module")
def run_help() -> str:
    result = CliRunner().invoke(main, ["run", "--help"], terminal_width=1000)
    assert result.exit_code == 0
    return result.output


def test_run_has_one_flag_per_key(run_help: str) -> None:
    for option in tables.options():
        flag = "--" + option.key.replace("_", "-")
        assert re.search(rf"^\s+(-\w, )?{flag}\b", run_help, re.M), flag
        if option.type == "BOOL":
            assert f"--no-{option.key.replace('_', '-')}" in run_help, option.key


def test_run_help_states_the_library_defaults(run_help: str) -> None:
    """run --help once said max_chunk defaulted to 64m while the library used 32m."""
    assert "library default 32m" in " ".join(flag_help(OPTIONS["max_chunk"]).split())
    flat = " ".join(run_help.split())
    for key in KNOWN_KEYS:
        if key not in ("report", "verbose"):  # run's own flags
            assert " ".join(flag_help(OPTIONS[key]).split()) in flat, key
