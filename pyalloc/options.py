"""REFMALLOC_OPTIONS: value parsing, formatting, merging, and click parameter types.

The library parses ``REFMALLOC_OPTIONS`` itself (a comma separated ``key=value`` list).
This module validates values before a program is started, so that a typo is a usage
error here rather than a warning line from inside the program, and writes values in
the plainest form the library accepts (sizes in bytes, bytes as ``0xNN``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

import click

ENV_VAR: Final = "REFMALLOC_OPTIONS"

#: Keys the library understands (see the README's table).
KNOWN_KEYS: Final = (
    "pattern",
    "free_pattern",
    "threshold",
    "cache",
    "report",
    "verbose",
    "max_mappings",
    "reserve",
    "refpages",
    "max_chunk",
    "mte",
    "free_guard",
)

SIZE_MAX: Final = 2**64 - 1
_SIZE_UNITS: Final = {"": 0, "k": 1, "m": 2, "g": 3, "t": 4}
_SIZE_RE: Final = re.compile(r"([0-9]+)([kmgt]?)", re.IGNORECASE)
_HEX_BYTE_RE: Final = re.compile(r"0x([0-9a-f]+)", re.IGNORECASE)
_KEY_RE: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

SIZE_HELP: Final = "a number of bytes with an optional k, m, g or t suffix, e.g. 4096, 64k, 2m, 1g"
BYTE_HELP: Final = "0x00-0xff (hex) or 0-255 (decimal)"


def parse_size(text: str) -> int:
    """Parse a size: bytes with an optional k/m/g/t suffix in binary units.

    >>> parse_size("64k"), parse_size("2M"), parse_size("4096")
    (65536, 2097152, 4096)
    """
    value = text.strip()
    match = _SIZE_RE.fullmatch(value)
    if match is None:
        raise ValueError(f"invalid size {text!r}: expected {SIZE_HELP}")
    number = int(match.group(1)) << (10 * _SIZE_UNITS[match.group(2).lower()])
    if number > SIZE_MAX:
        raise ValueError(f"invalid size {text!r}: larger than 2**64-1 bytes")
    return number


def parse_byte(text: str) -> int:
    """Parse a pattern byte: ``0x00``-``0xff`` or ``0``-``255``.

    >>> parse_byte("0xaa"), parse_byte("170")
    (170, 170)
    """
    value = text.strip()
    hex_match = _HEX_BYTE_RE.fullmatch(value)
    if hex_match is not None:
        number = int(hex_match.group(1), 16)
    elif value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise ValueError(f"invalid byte {text!r}: expected {BYTE_HELP}")
    if number > 0xFF:
        raise ValueError(f"invalid byte {text!r}: out of range, expected {BYTE_HELP}")
    return number


def format_byte(value: int) -> str:
    """``170`` -> ``"0xaa"``."""
    if not 0 <= value <= 0xFF:
        raise ValueError(f"byte out of range: {value}")
    return f"0x{value:02x}"


def _format_value(key: str, value: object) -> str:
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, int):
        text = format_byte(value) if key in ("pattern", "free_pattern") else str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise TypeError(f"REFMALLOC_OPTIONS {key}: unsupported value type {type(value).__name__}")
    if "," in text:
        raise ValueError(f"REFMALLOC_OPTIONS {key}: value {text!r} contains a comma")
    return text


def parse_options(text: str | None) -> list[tuple[str, str | None]]:
    """Split a REFMALLOC_OPTIONS string into ``(key, value)`` entries, in order.

    Entries without ``=`` are kept with value None so that nothing the user wrote is
    lost; the library reports them. Empty entries are dropped.
    """
    entries: list[tuple[str, str | None]] = []
    for raw in (text or "").split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, value = entry.partition("=")
        entries.append((key.strip(), value if sep else None))
    return entries


def format_options(options: Mapping[str, object]) -> str:
    """Build a REFMALLOC_OPTIONS string from a mapping; None values are left out.

    Integers for ``pattern``/``free_pattern`` are written as ``0xNN``, booleans as 1/0.
    Raises ValueError for a malformed key or a value containing a comma (the list
    separator, which the library cannot escape).
    """
    parts: list[str] = []
    for key, value in options.items():
        if _KEY_RE.fullmatch(key) is None:
            raise ValueError(f"REFMALLOC_OPTIONS: invalid key {key!r}")
        if value is None:
            continue
        parts.append(f"{key}={_format_value(key, value)}")
    return ",".join(parts)


def merge_options(existing: str | None, overrides: Mapping[str, object]) -> str:
    """Merge ``overrides`` into an existing REFMALLOC_OPTIONS string.

    Entries of ``existing`` are kept in order unless ``overrides`` sets the same key
    (to a value other than None); the overrides follow them.
    """
    new = format_options(overrides)
    replaced = {key for key, value in overrides.items() if value is not None}
    kept = [
        key if value is None else f"{key}={value}"
        for key, value in parse_options(existing)
        if key not in replaced
    ]
    return ",".join([*kept, new] if new else kept)


def _describe_size(value: int) -> str:
    for shift, suffix in ((40, "t"), (30, "g"), (20, "m"), (10, "k")):
        if value >= 1 << shift and value % (1 << shift) == 0:
            return f"{value >> shift}{suffix}"
    return str(value)


class SizeParamType(click.ParamType):
    """A size option: bytes with an optional k/m/g/t suffix, within [minimum, maximum]."""

    name = "size"

    def __init__(self, minimum: int = 0, maximum: int = SIZE_MAX) -> None:
        self.minimum = minimum
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            try:
                number = parse_size(str(value))
            except ValueError as exc:
                self.fail(str(exc), param, ctx)
        if not self.minimum <= number <= self.maximum:
            self.fail(
                f"{value!r} is out of range: expected a size between "
                f"{_describe_size(self.minimum)} and {_describe_size(self.maximum)}",
                param,
                ctx,
            )
        return number


class ByteParamType(click.ParamType):
    """A pattern byte option; with ``allow_off`` the word ``off`` is accepted too."""

    name = "byte"

    def __init__(self, allow_off: bool = False) -> None:
        self.allow_off = allow_off

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> int | str:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        text = str(value)
        if self.allow_off and text.strip().lower() == "off":
            return "off"
        try:
            return parse_byte(text)
        except ValueError as exc:
            if self.allow_off:
                self.fail(f"{exc} or 'off'", param, ctx)
            self.fail(str(exc), param, ctx)


SIZE: Final = SizeParamType()
#: The ranges the library accepts (allocator/src/config.c); outside them it would warn
#: and use its default, so the CLI refuses such values up front.
THRESHOLD: Final = SizeParamType(1, 1 << 40)
RESERVE: Final = SizeParamType(1 << 30, 64 << 40)
MAX_CHUNK: Final = SizeParamType(64 << 10, 1 << 30)
MAX_MAPPINGS: Final = click.IntRange(min=16)
BYTE: Final = ByteParamType()
BYTE_OR_OFF: Final = ByteParamType(allow_off=True)
