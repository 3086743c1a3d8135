"""REFMALLOC_OPTIONS: value parsing, formatting, merging, and click parameter types.

The library parses ``REFMALLOC_OPTIONS`` itself (a comma separated ``key=value`` list).
This module validates values before a program is started, so that a typo is a usage
error here rather than a warning line from inside the program, and writes values in
the plainest form the library accepts (sizes in bytes, bytes as ``0xNN``). The keys,
their types, defaults and ranges come from the library's table (allocator/base/
options.inc, read by :mod:`pyalloc.tables`); :func:`click_options` makes one flag per key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

import click

from pyalloc import tables

ENV_VAR: Final = "REFMALLOC_OPTIONS"

#: The library's options by key, in the order of its table.
OPTIONS: Final = {option.key: option for option in tables.options()}
#: Keys the library understands (see the README's table).
KNOWN_KEYS: Final = tuple(OPTIONS)
#: The library's limit on a path (RM_REPORT_PATH_MAX): shorter than this many bytes.
PATH_MAX: Final = 1024

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
        byte = key in OPTIONS and OPTIONS[key].type in ("BYTE", "BYTE_OFF")
        text = format_byte(value) if byte else str(value)
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

    Integers for byte options (``pattern``...) are written as ``0xNN``, booleans as 1/0.
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


class PathParamType(click.ParamType):
    """A path the library is given: made absolute (the program may change directory),
    without a comma (the list separator) and shorter than the library's limit."""

    name = "path"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text:
            self.fail("an empty path", param, ctx)
        path = os.path.abspath(text)
        if "," in path:
            self.fail(f"{path!r} contains a comma: REFMALLOC_OPTIONS cannot carry it", param, ctx)
        if len(os.fsencode(path)) >= PATH_MAX:
            self.fail(
                f"{path[:40]!r}...: the library takes paths shorter than {PATH_MAX} bytes",
                param,
                ctx,
            )
        return path


def _bounds(option: tables.Option) -> tuple[int, int]:
    return (
        parse_size(option.low) if option.low else 0,
        parse_size(option.high) if option.high else SIZE_MAX,
    )


def param_type(key: str) -> click.ParamType:
    """The click type of an option: its syntax and the range the library accepts."""
    option = OPTIONS[key]
    low, high = _bounds(option)
    if option.type == "BYTE":
        return ByteParamType()
    if option.type == "BYTE_OFF":
        return ByteParamType(allow_off=True)
    if option.type == "SIZE":
        return SizeParamType(low, high)
    if option.type in ("COUNT", "INT"):
        return click.IntRange(min=low, max=None if high == SIZE_MAX else high)
    if option.type == "BOOL":
        return click.BOOL
    return PathParamType()


_METAVARS: Final = {
    "BYTE": "BYTE",
    "BYTE_OFF": "BYTE|off",
    "SIZE": "SIZE",
    "COUNT": "N",
    "INT": "N",
    "PATH": "FILE",
}


def flag_help(option: tables.Option) -> str:
    """The help text of an option's flag: its sentence, range and library default."""
    notes = []
    # (click states the range of a COUNT or INT itself.)
    if option.low and option.type == "SIZE":
        notes.append(f"{option.low}-{option.high}" if option.high else f"at least {option.low}")
    shown = option.shown
    if option.type == "BOOL":
        shown = {"0": "off", "1": "on"}.get(shown, shown)
    notes.append(f"library default {shown}")
    return f"{option.help} ({'; '.join(notes)})."


F = TypeVar("F", bound=Callable[..., Any])


def click_options(
    skip: Iterable[str] = (),
    callbacks: Mapping[str, Callable[[click.Context, click.Parameter, Any], Any]] | None = None,
) -> Callable[[F], F]:
    """A decorator adding one flag per option (``--key``, ``--key/--no-key`` for a
    boolean), in table order, each defaulting to None (not given: not set). The
    parameter of each is named as the key."""
    callbacks = callbacks or {}
    skipped = set(skip)
    unknown = (skipped | set(callbacks)) - set(OPTIONS)
    if unknown:
        raise ValueError(f"not options of the library: {sorted(unknown)}")

    def decorate(function: F) -> F:
        for option in reversed(OPTIONS.values()):
            if option.key in skipped:
                continue
            flag = option.key.replace("_", "-")
            extra: dict[str, Any] = {"default": None, "help": flag_help(option)}
            if option.key in callbacks:
                extra["callback"] = callbacks[option.key]
            if option.type == "BOOL":
                decls = [f"--{flag}/--no-{flag}", option.key]
            else:
                decls = [f"--{flag}", option.key]
                extra.update(type=param_type(option.key), metavar=_METAVARS[option.type])
            function = click.option(*decls, **extra)(function)
        return function

    return decorate


SIZE: Final = SizeParamType()
#: The ranges the library accepts (allocator/base/options.inc); outside them it would
#: warn and use its default, so the CLI refuses such values up front.
THRESHOLD: Final = param_type("threshold")
BYTE: Final = ByteParamType()
BYTE_OR_OFF: Final = ByteParamType(allow_off=True)
