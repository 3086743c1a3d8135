"""--locate: find the allocation call sites whose uninitialized bytes matter.

The library logs every allocation site (``sites=PATH``: module, offset from the
module base, dladdr's symbol) and gives the blocks of listed sites another pattern
(``site_list=PATH``, ``site_pattern=BYTE``). Bisecting over the logged sites finds a
minimal set whose pattern alone changes the program's behaviour, in O(log sites)
runs per site found.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

#: Header line of a site list written by check (the library skips "#" lines).
LIST_HEADER = "# refmalloc check: site list\n"
#: Stop after naming this many sites.
MAX_SITES = 8


@dataclass(frozen=True, order=True)
class Site:
    module: str
    offset: int
    symbol: str = field(default="-", compare=False)
    count: int = field(default=0, compare=False)

    def line(self) -> str:
        return f"{self.count}\t{self.module}\t{self.offset:#x}\t{self.symbol}"


@dataclass
class NamedSite:
    """A site with what the binary's symbols and debug info say about it."""

    module: str
    offset: int
    count: int
    symbol: str | None
    function: str | None
    file: str | None
    line: int | None
    path: str | None  # the module file that was read

    def as_json(self) -> dict[str, object]:
        return {
            "module": self.module,
            "offset": f"{self.offset:#x}",
            "allocations": self.count,
            "symbol": self.symbol,
            "function": self.function,
            "file": self.file,
            "line": self.line,
        }

    def describe(self) -> str:
        where = f"{self.module}+{self.offset:#x}"
        text = f"{self.function or self.symbol or '??'} ({where})"
        if self.file:
            text += f" at {self.file}" + (f":{self.line}" if self.line else "")
        return text + f", {self.count} allocation{'s' if self.count != 1 else ''}"


def parse_log(text: str) -> list[Site]:
    sites = []
    for raw in text.splitlines():
        if not raw or raw.startswith("#"):
            continue
        parts = raw.split("\t")
        if len(parts) != 4:
            continue
        try:
            sites.append(Site(parts[1], int(parts[2], 16), parts[3], int(parts[0])))
        except ValueError:
            continue
    return sites


def merge_logs(paths: Sequence[Path]) -> list[Site]:
    """Every site of several logs (one per process), counts summed, in a stable order."""
    merged: dict[tuple[str, int], Site] = {}
    for path in paths:
        try:
            text = path.read_text(errors="replace")
        except OSError:
            continue
        for site in parse_log(text):
            key = (site.module, site.offset)
            old = merged.get(key)
            count = site.count + (old.count if old else 0)
            symbol = site.symbol if site.symbol != "-" or old is None else old.symbol
            merged[key] = Site(site.module, site.offset, symbol, count)
    return sorted(merged.values())


def write_list(path: Path, sites: Sequence[Site]) -> None:
    path.write_text(LIST_HEADER + "".join(s.line() + "\n" for s in sites))


@lru_cache(maxsize=64)
def _load_base(path: str) -> int:
    """The link-time address of the first loaded segment (page aligned): what dladdr's
    module base corresponds to in the file (0 for most shared objects and PIEs)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:  # 64-bit ELF only
                return 0
            endian = "<" if head[5] == 1 else ">"
            phoff = struct.unpack_from(endian + "Q", head, 32)[0]
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except (OSError, struct.error, IndexError):
        return 0
    page = os.sysconf("SC_PAGESIZE")
    loads = []
    for i in range(phnum):
        p_type = struct.unpack_from(endian + "I", table, i * phentsize)[0]
        if p_type == 1:  # PT_LOAD
            vaddr = struct.unpack_from(endian + "Q", table, i * phentsize + 16)[0]
            loads.append(vaddr)
    return (min(loads) & ~(page - 1)) if loads else 0


def resolve_module(module: str, cwd: str | None, env_path: str | None) -> str | None:
    """The file a module name from the log refers to (argv[0] is as invoked)."""
    if os.sep in module:
        path = os.path.join(cwd or os.getcwd(), module)
        return path if os.path.isfile(path) else None
    found = shutil.which(module, path=env_path)
    return found


def name_site(
    site: Site, cwd: str | None = None, env_path: str | None = None, return_address: bool = True
) -> NamedSite:
    """Function and file:line of a site, by addr2line -f -C -i on offset - 1.

    The logged offset is a return address: offset - 1 lies inside the call. An
    instruction's own address (``return_address=False``: the reading instruction of a
    read-before-write) is looked up as it is.
    """
    path = resolve_module(site.module, cwd, env_path)
    symbol = None if site.symbol in ("", "-") else site.symbol
    named = NamedSite(site.module, site.offset, site.count, symbol, symbol, None, None, path)
    tool = shutil.which("addr2line")
    if path is None or tool is None:
        return named
    address = site.offset - (1 if return_address else 0) + _load_base(path)
    try:
        out = subprocess.run(
            [tool, "-f", "-C", "-i", "-e", path, f"{address:#x}"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return named
    if len(out) >= 2:
        function, location = out[0].strip(), out[1].strip()
        if function and function != "??":
            named.function = function
        file_part, _, line_part = location.rpartition(":")
        line_part = line_part.split(" ")[0]
        if file_part and file_part != "??":
            named.file = file_part
            named.line = int(line_part) if line_part.isdigit() and line_part != "0" else None
    return named


def bisect(
    sites: Sequence[Site],
    positive: Callable[[Sequence[Sequence[Site]]], list[bool]],
    limit: int = MAX_SITES,
) -> list[Site]:
    """A small set of sites whose alternate pattern alone makes ``positive`` true.

    ``positive`` tests several site sets at once (one run each, overlapped) and says
    for each whether the behaviour with those sites flipped differs from the
    baseline. Precondition: positive(all sites) is true.

    Halves are tested side by side; a positive half is searched further (both, when
    both are positive: several sites matter independently). When neither half alone
    is positive, both are needed: each is searched with the other held flipped.
    """
    found: list[Site] = []

    def search(candidates: list[Site], fixed: list[Site]) -> list[Site]:
        if len(found) >= limit:
            return []
        if len(candidates) == 1:
            found.append(candidates[0])
            return candidates
        half = len(candidates) // 2
        left, right = candidates[:half], candidates[half:]
        t_left, t_right = positive([fixed + left, fixed + right])
        if t_left and t_right:
            return search(left, fixed) + search(right, fixed)
        if t_left:
            return search(left, fixed)
        if t_right:
            return search(right, fixed)
        needed_left = search(left, fixed + right)
        return needed_left + search(right, fixed + needed_left)

    search(list(sites), [])
    return found
