"""Read-before-write findings: the library's ``track_reads`` reports, named.

One run of ``refmalloc check`` goes with ``track_reads=1`` and the threshold lowered
to a page, so that every block of a page or more is built from reference pages and
the first touch of each of its pages is seen (userfaultfd minor faults): a page whose
first touch is a read was never written. Each process writes a JSON report; its
``reads`` section lists the readers (instruction or system call), deduplicated by
allocation site, reader and context (``refmalloc_set_context``: the pytest plugin's
test id; ``context`` null outside one). Here they are merged over the processes and named with
addr2line, as ``--locate`` names allocation sites.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyalloc.check import locate as loc

#: Option of the tracked run's report files (one per process).
REPORT_NAME = "reads.%p.json"

#: System calls that read user memory, by number (the kernel reading a block inside
#: one of them is a read of never-written bytes, e.g. write(2) of a whole buffer).
_SYSCALLS = {
    "x86_64": {
        0: "read",
        1: "write",
        17: "pread64",
        18: "pwrite64",
        19: "readv",
        20: "writev",
        40: "sendfile",
        44: "sendto",
        46: "sendmsg",
        296: "pwritev",
        328: "pwritev2",
        310: "process_vm_readv",
        311: "process_vm_writev",
    },
    "aarch64": {
        63: "read",
        64: "write",
        65: "readv",
        66: "writev",
        67: "pread64",
        68: "pwrite64",
        70: "pwritev",
        71: "sendfile",
        206: "sendto",
        211: "sendmsg",
        287: "pwritev2",
    },
}


def syscall_name(number: int) -> str:
    return _SYSCALLS.get(platform.machine(), {}).get(number, f"syscall {number}")


def tracked_options(options: Mapping[str, object]) -> dict[str, object]:
    """The REFMALLOC_OPTIONS of a read-tracked run (``check``'s R1, a pytest session):
    ``options`` with track_reads=1 and the threshold at most one page, so that blocks
    of a page or more count.

    Smaller blocks come from the next allocator, filled with the pattern: those the
    tracker cannot see at all (a page is its granularity).
    """
    page = os.sysconf("SC_PAGESIZE")
    threshold = min(int(str(options.get("threshold", 1 << 62))), page)
    return {**options, "track_reads": 1, "threshold": threshold}


@dataclass
class ReadFinding:
    read: loc.NamedSite | None  # the reading instruction (None: a system call's)
    caller: loc.NamedSite | None  # the program's line that called the reading function
    alloc: loc.NamedSite | None
    syscall: str | None
    block_size: int
    page: int
    count: int
    pid: int
    #: The program's context when it read (refmalloc_set_context: the pytest plugin's
    #: test node id); None outside any.
    context: str | None = None

    def read_text(self) -> str:
        """Where the read happened, for people."""
        if self.syscall is not None:
            text = f"the kernel read it in {self.syscall}(2)"
            if self.caller is not None:
                text += f", called from {where(self.caller)}"
            return text
        text = where(self.read) if self.read is not None else "an unknown instruction"
        if self.caller is not None:
            text += f", called from {where(self.caller)}"
        return text

    def line_key(self) -> tuple[Any, ...]:
        """What a person sees of it: the program's line that read, the syscall, the
        allocation's line."""

        def place(site: loc.NamedSite | None) -> tuple[Any, ...]:
            if site is None:
                return (None,)
            if site.file and site.line:
                return (site.file, site.line)
            return (site.module, site.offset)

        reader = place(self.caller) if self.caller is not None else place(self.read)
        return (reader, self.syscall, place(self.alloc), self.pid, self.context)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": "read-before-write",
            # Not an output: what the tracked run saw (for readers of findings[]).
            "observable": "reads",
            "read_site": _site_json(self.read),
            "caller": _site_json(self.caller),
            "alloc_site": _site_json(self.alloc),
            "syscall": self.syscall,
            "block_size": self.block_size,
            "page": self.page,
            "pages": self.count,
            "pid": self.pid,
            "context": self.context,
            "text": self.read_text(),
        }


@dataclass
class ReadsResult:
    """What the tracked run saw, or why it saw nothing."""

    requested: bool = True
    tracked: bool = False
    reason: str | None = None
    processes: int = 0
    first_touches: int = 0
    reads_before_write: int = 0
    dropped: int = 0
    #: Context names the library's table had no room for (their reads: context None).
    contexts_dropped: int = 0
    findings: list[ReadFinding] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "requested": self.requested,
            "tracked": self.tracked,
            "reason": self.reason,
            "processes": self.processes,
            "first_touches": self.first_touches,
            "reads_before_write": self.reads_before_write,
            "dropped": self.dropped,
            "contexts_dropped": self.contexts_dropped,
            "findings": [f.as_json() for f in self.findings],
        }


def where(site: loc.NamedSite) -> str:
    name = site.function or site.symbol or "??"
    text = f"{name} ({os.path.basename(site.module)}+{site.offset:#x})"
    if site.file:
        text += f" at {site.file}" + (f":{site.line}" if site.line else "")
    return text


def _site_json(site: loc.NamedSite | None) -> dict[str, Any] | None:
    if site is None:
        return None
    return {
        "module": site.module,
        "offset": f"{site.offset:#x}",
        "function": site.function or site.symbol,
        "file": site.file,
        "line": site.line,
    }


#: Where the system's libraries live: a read inside one is named by its caller too.
_SYSTEM_DIRS = ("/lib/", "/lib64/", "/usr/lib/", "/usr/lib64/", "/usr/local/lib/")


def _system_module(path: str) -> bool:
    real = os.path.realpath(path)
    return real.startswith(_SYSTEM_DIRS)


def _named(
    place: dict[str, Any] | None, cwd: str | None, env_path: str | None, return_address: bool
) -> loc.NamedSite | None:
    if not place or place.get("module") in (None, "?"):
        return None
    site = loc.Site(str(place["module"]), int(place["offset"]), place.get("symbol") or "-", 1)
    return loc.name_site(site, cwd, env_path, return_address=return_address)


def _caller(
    callers: Sequence[dict[str, Any]],
    read: loc.NamedSite | None,
    cwd: str | None,
    env_path: str | None,
) -> loc.NamedSite | None:
    """The program's line that called the reading function: when the read is in a
    system library (libc's memcmp, the write(2) wrapper) or has no line, the first word
    of the reader's stack that addr2line places on a line of another module."""
    if read is not None and read.file and not _system_module(read.path or read.module):
        return None
    for place in callers:
        if read is not None and place.get("module") == read.module:
            continue
        named = _named(place, cwd, env_path, return_address=True)
        if named is not None and named.file:
            return named
    return None


def collect(
    report_dir: Path, cwd: str | None, env_path: str | None, pattern: str = "reads.*.json"
) -> ReadsResult:
    """Merge the reads sections of every report in report_dir (files matching
    ``pattern``). Findings are kept apart per context (the test that read)."""
    result = ReadsResult()
    reasons: list[str] = []
    seen: dict[tuple[Any, ...], ReadFinding] = {}
    lines: dict[tuple[Any, ...], ReadFinding] = {}
    for path in sorted(report_dir.glob(pattern)):
        try:
            data = json.loads(path.read_text(errors="replace"))
        except (OSError, ValueError):
            continue
        reads = data.get("reads")
        if not isinstance(reads, dict):
            continue
        result.processes += 1
        if reads.get("tracked"):
            result.tracked = True
        elif reads.get("reason"):
            reasons.append(str(reads["reason"]))
        result.first_touches += int(reads.get("first_touches", 0))
        result.reads_before_write += int(reads.get("reads_before_write", 0))
        result.dropped += int(reads.get("dropped", 0))
        result.contexts_dropped += int(reads.get("contexts_dropped", 0))
        for f in reads.get("findings", []):
            number = f.get("syscall")
            key = (
                json.dumps(f.get("read"), sort_keys=True),
                json.dumps(f.get("alloc"), sort_keys=True),
                number,
                f.get("context"),
            )
            if key in seen:
                seen[key].count += int(f.get("count", 1))
                continue
            read = _named(f.get("read"), cwd, env_path, return_address=number is not None)
            finding = ReadFinding(
                read=read if number is None else None,
                caller=_caller(f.get("callers", []), read, cwd, env_path),
                alloc=_named(f.get("alloc"), cwd, env_path, return_address=True),
                syscall=syscall_name(int(number)) if number is not None else None,
                block_size=int(f.get("block_size", 0)),
                page=int(f.get("page", 0)),
                count=int(f.get("count", 1)),
                pid=int(data.get("pid", 0)),
                context=f.get("context"),
            )
            seen[key] = finding
            # One finding per program line: a libc function reads with several
            # instructions (memcmp's first page and its loop), blocks from one line of
            # a loop have several return addresses only if inlined.
            line_key = finding.line_key()
            same = lines.get(line_key)
            if same is not None:
                same.count += finding.count
                seen[key] = same
                continue
            lines[line_key] = finding
            result.findings.append(finding)
    if result.processes == 0:
        result.reason = (
            "the tracked run wrote no report (it ended without the library's exit handlers)"
        )
    elif not result.tracked:
        result.reason = reasons[0] if reasons else "not tracked"
    return result
