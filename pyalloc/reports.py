"""Reports: read the library's JSON, collect one per process, analyse them with numpy.

The library writes one JSON report per process at exit (``report=PATH`` in
REFMALLOC_OPTIONS). ``refmalloc run --report FILE`` points every process of the run at a
private directory (``report-%p.json``) and afterwards writes FILE as a *run report*:

    {"refmalloc_run": 1, "command": [...], "exit_status": N, "pid": N,
     "processes": [<library report>, ...]}

with the command's own process first. :func:`load` reads either kind.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from pyalloc import tables

RUN_FORMAT: Final = 1
KINDS: Final = ("refpage", "eager", "zero")

#: Fallback counters of the library, and what each means (FALLBACK in refmalloc.h).
FALLBACKS: Final = {stat.name: stat.text for stat in tables.stats() if stat.kind == "FALLBACK"}

_REQUIRED: Final = ("pid", "pattern", "threshold", "page_size", "stats")


class ReportError(ValueError):
    """A file that is not a refmalloc report (the message names the file and the problem)."""


def _check_process(data: Any, where: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ReportError(f"{where}: not a refmalloc report (expected a JSON object)")
    missing = [key for key in _REQUIRED if key not in data]
    if missing:
        raise ReportError(
            f"{where}: not a refmalloc report (missing {', '.join(repr(k) for k in missing)})"
        )
    if not isinstance(data["stats"], dict):
        raise ReportError(f"{where}: 'stats' is not an object")
    return data


def parse(data: Any, where: str) -> list[dict[str, Any]]:
    """The process reports in a decoded library report or run report."""
    if isinstance(data, dict) and "processes" in data:
        processes = data["processes"]
        if not isinstance(processes, list):
            raise ReportError(f"{where}: 'processes' is not a list")
        return [_check_process(p, f"{where}: process {i}") for i, p in enumerate(processes)]
    return [_check_process(data, where)]


def is_check_result(data: Any) -> bool:
    """Is this decoded JSON a ``refmalloc check --json`` result (not a report)?"""
    return isinstance(data, dict) and "verdict" in data and "comparisons" in data


def load(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read a report file: the process reports it holds (raises ReportError)."""
    return parse(read_json(path), os.fspath(path))


def read_json(path: str | os.PathLike[str]) -> Any:
    """The decoded JSON of a report or check result (raises ReportError)."""
    where = os.fspath(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ReportError(f"{where}: cannot read it ({exc.strerror})") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        detail = "empty file" if not text.strip() else f"invalid JSON: {exc}"
        raise ReportError(f"{where}: not a refmalloc report ({detail})") from exc
    return data


# --- collecting the reports of a run ---------------------------------------------------

_COLLECTED_RE: Final = re.compile(r"report-([0-9]+)\.json")


def collect(directory: Path, top_pid: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Process reports left in ``directory`` (as ``report-<pid>.json``) by a run.

    Returns the reports, the command's own process first, then in the order they were
    written; and a list of problems (unreadable files), which are not fatal.
    """
    found: list[tuple[bool, float, int, dict[str, Any]]] = []
    problems: list[str] = []
    for entry in directory.iterdir():
        match = _COLLECTED_RE.fullmatch(entry.name)
        if match is None:
            continue
        try:
            (report,) = load(entry)
        except (ReportError, ValueError) as exc:
            problems.append(str(exc))
            continue
        pid = int(match.group(1))
        found.append((pid != top_pid, entry.stat().st_mtime, pid, report))
    found.sort(key=lambda item: item[:3])
    return [item[3] for item in found], problems


def run_report(
    command: Sequence[str], exit_status: int, pid: int | None, processes: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "refmalloc_run": RUN_FORMAT,
        "command": list(command),
        "exit_status": exit_status,
        "pid": pid,
        "processes": processes,
    }


def expand_pid(path: str, pid: int) -> str:
    """Expand ``%p`` to the pid and ``%%`` to ``%``, as the library does."""
    return re.sub(r"%[p%]", lambda m: str(pid) if m.group(0) == "%p" else "%", path)


def write_new(path: str, data: Any) -> None:
    """Write JSON to a file that must not exist yet (never overwrites, no symlinks).

    Mode 0600, as the library's own reports: they reveal addresses of the program's memory.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")


# --- which program a process ran ------------------------------------------------------

#: Width of a process name in the tables (longer ones end in "…").
NAME_WIDTH: Final = 40


def _printable(text: str) -> str:
    """An argument as a person can read it: bytes that were not UTF-8 (lone surrogates in
    the report: Python's surrogateescape) as \\xNN, control characters escaped."""
    try:
        data = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate the library never writes (an edited file)
        data = text.encode("utf-8", "backslashreplace")
    raw = data.decode("utf-8", "backslashreplace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in raw)


def process_name(proc: dict[str, Any], width: int = NAME_WIDTH) -> str:
    """The program a process ran: the base name of its executable and its arguments
    (``argv[1:]``), quoted as a shell would need, cut to ``width`` characters. Reports
    older than the ``exe`` and ``argv`` fields give ``pid N``."""
    exe, argv = proc.get("exe"), proc.get("argv")
    if not isinstance(argv, list):
        argv = []
    if isinstance(exe, str) and exe:
        name = os.path.basename(exe.removesuffix(" (deleted)"))
    elif argv and isinstance(argv[0], str):
        name = os.path.basename(argv[0])
    else:
        return f"pid {proc['pid']}"
    words = [_printable(name), *(shlex.quote(_printable(str(a))) for a in argv[1:])]
    text = " ".join(words)
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def process_label(proc: dict[str, Any], width: int = NAME_WIDTH) -> str:
    """process_name and the pid, for pictures that show several processes."""
    name = process_name(proc, width)
    return name if name.startswith("pid ") else f"{name} [{proc['pid']}]"


# --- analysis --------------------------------------------------------------------------


@dataclass
class Blocks:
    """Large blocks of one or more processes as numpy columns (one row per block)."""

    pid: npt.NDArray[np.int64]
    live: npt.NDArray[np.bool_]
    kind: npt.NDArray[np.str_]
    size: npt.NDArray[np.int64]
    pages: npt.NDArray[np.int64]
    pages_written: npt.NDArray[np.int64]
    page_size: npt.NDArray[np.int64]

    @classmethod
    def of(cls, processes: Iterable[dict[str, Any]]) -> Blocks:
        rows: list[tuple[int, bool, str, int, int, int, int]] = []
        for proc in processes:
            for live, key in ((True, "live_blocks"), (False, "freed_blocks")):
                for block in proc.get(key) or ():
                    rows.append(
                        (
                            int(proc["pid"]),
                            live,
                            str(block.get("kind", "?")),
                            int(block.get("size", 0)),
                            int(block.get("pages", 0)),
                            int(block.get("pages_written", 0)),
                            int(proc["page_size"]),
                        )
                    )
        columns = list(zip(*rows, strict=True)) if rows else [()] * 7
        return cls(
            pid=np.array(columns[0], dtype=np.int64),
            live=np.array(columns[1], dtype=np.bool_),
            kind=np.array(columns[2], dtype=np.str_),
            size=np.array(columns[3], dtype=np.int64),
            pages=np.array(columns[4], dtype=np.int64),
            pages_written=np.array(columns[5], dtype=np.int64),
            page_size=np.array(columns[6], dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.pid)

    @property
    def pages_pattern(self) -> npt.NDArray[np.int64]:
        """Pages never written: still the shared pattern page, or never touched."""
        return self.pages - self.pages_written

    @property
    def eager_bytes(self) -> npt.NDArray[np.int64]:
        """Memory a memset of the whole block would have dirtied."""
        return self.pages * self.page_size

    @property
    def written_bytes(self) -> npt.NDArray[np.int64]:
        return self.pages_written * self.page_size

    @property
    def saved_bytes(self) -> npt.NDArray[np.int64]:
        """Memory saved against eager filling: 0 for blocks that were not refpage blocks."""
        saved = self.eager_bytes - self.written_bytes
        return np.where(self.kind == "refpage", saved, 0)


@dataclass
class Summary:
    """The figures of one process, or the totals of several."""

    pids: list[int]
    pattern: list[int]
    free_pattern: list[int | None]
    threshold: list[int]
    page_size: int
    paths: dict[str, dict[str, int]]
    cache: dict[str, int]
    peak_refpage_bytes: int
    refpage_pages: dict[str, int]
    eager_equivalent: dict[str, int]
    live_at_exit: dict[str, int]
    memory: dict[str, int | None]
    fallbacks: dict[str, int]
    large_blocks_listed: int = 0
    notes: list[str] = field(default_factory=list)
    #: process_name() of each process, in the order of pids.
    names: list[str] = field(default_factory=list)
    #: track_reads: processes tracked and not, pages first touched, first read, and
    #: the distinct readers found; None when no report has a reads section.
    reads: dict[str, int] | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _stat(proc: dict[str, Any], name: str) -> int:
    return int(proc["stats"].get(name, 0))


def summarize(processes: Sequence[dict[str, Any]]) -> Summary:
    """Figures over the given process reports (totals; the peak is the largest peak)."""
    if not processes:
        raise ValueError("no process reports to summarize")
    blocks = Blocks.of(processes)
    page_sizes = {int(p["page_size"]) for p in processes}
    page_size = page_sizes.pop() if len(page_sizes) == 1 else 0

    def total(name: str) -> int:
        return sum(_stat(p, name) for p in processes)

    # large = refpage + eager + zero: every large block is counted once, when handed out
    # (fresh or reused from the cache), under the kind it was made as.
    paths = {
        kind: {"blocks": total(f"{kind}_allocs"), "bytes": total(f"{kind}_bytes")}
        for kind in ("small", "large", "refpage", "eager", "zero")
    }
    live_ref = blocks.live & (blocks.kind == "refpage")
    live_pages = int(blocks.pages[live_ref].sum())
    live_written = int(blocks.pages_written[live_ref].sum())
    freed_pages = total("freed_pages")
    freed_written = total("freed_pages_written")
    pages = live_pages + freed_pages
    written = live_written + freed_written
    # Bytes: per process, since page sizes could differ between reports.
    sizes = np.array([int(p["page_size"]) for p in processes], dtype=np.int64)
    freed_pages_by = np.array([_stat(p, "freed_pages") for p in processes], dtype=np.int64)
    freed_written_by = np.array(
        [_stat(p, "freed_pages_written") for p in processes], dtype=np.int64
    )
    live_eager = int(blocks.eager_bytes[live_ref].sum())
    live_written_bytes = int(blocks.written_bytes[live_ref].sum())
    eager_bytes = live_eager + int((freed_pages_by * sizes).sum())
    written_bytes = live_written_bytes + int((freed_written_by * sizes).sum())

    memory: dict[str, int | None] = {"anonymous": None, "pss": None}
    with_memory = [p["memory"] for p in processes if isinstance(p.get("memory"), dict)]
    notes: list[str] = []
    if with_memory:
        for key in ("anonymous", "pss"):
            memory[key] = sum(int(m.get(key, 0)) for m in with_memory)
        if len(with_memory) < len(processes):
            notes.append(
                f"memory at exit known for {len(with_memory)} of {len(processes)} processes"
            )
    if len(processes) > 1:
        notes.append(
            "totals add up the processes; a forked child counts events from the fork "
            "on (its report names the parent in forked_from)"
        )
    fallbacks = {name: total(name) for name in FALLBACKS}
    sections = [p["reads"] for p in processes if isinstance(p.get("reads"), dict)]
    reads = None
    if sections:
        tracked = sum(1 for r in sections if r.get("tracked"))
        reads = {
            "tracked_processes": tracked,
            "untracked_processes": len(sections) - tracked,
            "first_touches": sum(int(r.get("first_touches", 0)) for r in sections),
            "reads_before_write": sum(int(r.get("reads_before_write", 0)) for r in sections),
            "findings": sum(len(r.get("findings", [])) for r in sections),
        }
    return Summary(
        reads=reads,
        pids=[int(p["pid"]) for p in processes],
        pattern=sorted({int(p["pattern"]) for p in processes}),
        free_pattern=sorted(
            {p.get("free_pattern") for p in processes}, key=lambda v: -1 if v is None else v
        ),
        threshold=sorted({int(p["threshold"]) for p in processes}),
        page_size=page_size,
        paths=paths,
        cache={
            "hits": total("cache_hits"),
            "misses": total("cache_misses"),
            "restored_by_dontneed": total("restored_by_dontneed"),
            "restored_by_fill": total("restored_by_fill"),
        },
        peak_refpage_bytes=max(_stat(p, "peak_refpage_bytes") for p in processes),
        refpage_pages={"total": pages, "written": written, "never_written": pages - written},
        eager_equivalent={
            "eager_bytes": eager_bytes,
            "written_bytes": written_bytes,
            "saved_bytes": eager_bytes - written_bytes,
        },
        live_at_exit={
            "refpage_blocks": int(live_ref.sum()),
            "pages": live_pages,
            "pages_written": live_written,
            "eager_bytes": live_eager,
            "written_bytes": live_written_bytes,
        },
        memory=memory,
        fallbacks=fallbacks,
        large_blocks_listed=len(blocks),
        notes=notes,
        names=[process_name(p) for p in processes],
    )


# --- rendering -------------------------------------------------------------------------


def human(n: int | None) -> str:
    """Bytes in binary units: ``1536`` -> ``"1.5 KiB"``."""
    if n is None:
        return "n/a"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "-"


def _bytes_list(values: Sequence[int | None]) -> str:
    return ", ".join("off" if v is None else f"0x{v:02x}" for v in values)


def who(summary: Summary) -> str:
    """What the summary covers: "N processes", or one process by name and pid."""
    procs = len(summary.pids)
    if procs > 1:
        return f"{procs} processes"
    if summary.names and not summary.names[0].startswith("pid "):
        return f"{summary.names[0]} (pid {summary.pids[0]})"
    return f"pid {summary.pids[0]}"


def summary_rows(summary: Summary) -> list[tuple[str, str]]:
    """The summary as (label, text) rows: the text table's and the HTML page's."""
    s = summary
    rows: list[tuple[str, str]] = []
    rows.append(
        ("pattern", f"{_bytes_list(s.pattern)} (free pattern {_bytes_list(s.free_pattern)})")
    )
    rows.append(("threshold", ", ".join(human(t) for t in s.threshold)))
    for kind in ("small", "large", "refpage", "eager", "zero"):
        label = {
            "small": "small blocks",
            "large": "large blocks",
            "refpage": "  refpage blocks",
            "eager": "  eager blocks",
            "zero": "  zero (calloc) blocks",
        }[kind]
        path = s.paths[kind]
        rows.append((label, f"{path['blocks']:,} ({human(path['bytes'])})"))
    rows.append(("peak live refpage bytes", human(s.peak_refpage_bytes)))
    pages = s.refpage_pages
    rows.append(
        (
            "refpage pages written",
            f"{pages['written']:,} of {pages['total']:,} "
            f"({_percent(pages['written'], pages['total'])}); "
            f"never written {pages['never_written']:,}",
        )
    )
    eq = s.eager_equivalent
    rows.append(
        (
            "eager memset would write",
            f"{human(eq['eager_bytes'])}; refpages wrote {human(eq['written_bytes'])}, "
            f"saved {human(eq['saved_bytes'])}",
        )
    )
    live = s.live_at_exit
    rows.append(
        (
            "live refpage at exit",
            f"{live['refpage_blocks']} block{'' if live['refpage_blocks'] == 1 else 's'}, "
            f"{human(live['written_bytes'])} written of "
            f"{human(live['eager_bytes'])}",
        )
    )
    rows.append(
        (
            "memory at exit",
            f"anonymous {human(s.memory['anonymous'])}, PSS {human(s.memory['pss'])}",
        )
    )
    cache = s.cache
    rows.append(("large block cache", f"{cache['hits']:,} hits, {cache['misses']:,} misses"))
    taken = [f"{n:,} {FALLBACKS[k]}" for k, n in s.fallbacks.items() if n]
    rows.append(("fallbacks", "; ".join(taken) if taken else "none"))
    if s.reads is not None:
        r = s.reads
        untracked = f", {r['untracked_processes']} not tracked" if r["untracked_processes"] else ""
        rows.append(
            (
                "reads (track_reads)",
                f"{r['reads_before_write']:,} of {r['first_touches']:,} first touches were "
                f"reads before writes, {r['findings']} readers{untracked}",
            )
        )
    return rows


def render(summary: Summary, title: str = "refmalloc") -> str:
    """The summary as a short, aligned table."""
    s = summary
    rows = summary_rows(summary)
    width = max(len(label) for label, _ in rows)
    lines = [f"{title}: {who(s)}"]
    lines.extend(f"  {label.ljust(width)}  {value}" for label, value in rows)
    lines.extend(f"  note: {note}" for note in s.notes)
    return "\n".join(lines)


def render_line(summary: Summary) -> str:
    """The totals in one line: processes, large blocks, pages written, memory saved."""
    s = summary
    procs = len(s.pids)
    large = s.paths["large"]["blocks"]
    pages = s.refpage_pages
    return (
        f"refmalloc report: {procs} process{'' if procs == 1 else 'es'}, "
        f"{large:,} large block{'' if large == 1 else 's'}, refpage pages written "
        f"{pages['written']:,} of {pages['total']:,}, saved "
        f"{human(s.eager_equivalent['saved_bytes'])} against eager filling"
    )


def render_processes(processes: Sequence[dict[str, Any]]) -> str:
    """One line per process: its program and main figures.

    Block columns count blocks handed out: ``small`` from the next allocator, ``large``
    (at or above the threshold) = ``refpage`` + ``eager`` (the memset fallback) + ``zero``
    (large callocs), reused blocks included.
    """
    header = (
        "pid", "process", "pattern", "small", "large", "refpage", "eager", "zero",
        "written/pages", "anonymous", "PSS",
    )  # fmt: skip
    table: list[tuple[str, ...]] = [header]
    for proc in processes:
        one = summarize([proc])
        pages = one.refpage_pages
        name = one.names[0]
        table.append(
            (
                str(proc["pid"]),
                "?" if name == f"pid {proc['pid']}" else name,  # not in older reports
                f"0x{int(proc['pattern']):02x}",
                *(f"{one.paths[k]['blocks']:,}" for k in ("small", "large", "refpage", "eager")),
                f"{one.paths['zero']['blocks']:,}",
                f"{pages['written']:,}/{pages['total']:,}",
                human(one.memory["anonymous"]),
                human(one.memory["pss"]),
            )
        )
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    left = {0, 1}  # pid and process name flush left, figures flush right
    return "\n".join(
        "  ".join(
            cell.ljust(w) if i in left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()
        for row in table
    )


# --- processes and allocation sites --------------------------------------------------

#: Label of the blocks of a report written without sites= (no site recorded).
NO_SITE: Final = "(site not recorded: run with --sites)"


@dataclass(frozen=True, order=True)
class SiteKey:
    """An allocation site as the sites log names it: module and offset from its base."""

    module: str
    offset: int
    symbol: str | None = field(default=None, compare=False)

    def label(self) -> str:
        """The symbol when dladdr named one, else module+offset (module by its basename)."""
        where = f"{os.path.basename(self.module) or self.module}+{self.offset:#x}"
        return f"{self.symbol} ({where})" if self.symbol else where


@dataclass
class SiteGroup:
    """The large blocks of one process allocated at one site (``site`` None: unknown)."""

    pid: int
    process: str
    site: SiteKey | None
    blocks: int = 0
    live: int = 0
    bytes: int = 0  # pages spanned, in bytes: what an eager memset would dirty
    written_bytes: int = 0
    refpage_bytes: int = 0
    kinds: dict[str, int] = field(default_factory=dict)  # blocks per kind
    label: str = ""  # the site as shown: set by name_sites, else SiteKey.label()

    @property
    def site_label(self) -> str:
        if self.label:
            return self.label
        return self.site.label() if self.site else NO_SITE

    @property
    def never_written_bytes(self) -> int:
        return self.bytes - self.written_bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "process": self.process,
            "site": None
            if self.site is None
            else {
                "module": self.site.module,
                "offset": f"{self.site.offset:#x}",
                "symbol": self.site.symbol,
            },
            "label": self.site_label,
            "blocks": self.blocks,
            "live": self.live,
            "bytes": self.bytes,
            "written_bytes": self.written_bytes,
            "never_written_bytes": self.never_written_bytes,
            "kinds": dict(self.kinds),
        }


def _site_of(block: dict[str, Any]) -> SiteKey | None:
    site = block.get("site")
    if not isinstance(site, dict):
        return None
    try:
        offset = int(str(site.get("offset", "")), 16)
    except ValueError:
        return None
    symbol = site.get("symbol")
    return SiteKey(str(site.get("module", "?")), offset, symbol if symbol else None)


def site_groups(processes: Sequence[dict[str, Any]]) -> list[SiteGroup]:
    """Large blocks (live and recently freed) grouped by process and allocation site,
    the largest first (bytes spanned)."""
    groups: dict[tuple[int, SiteKey | None], SiteGroup] = {}
    for proc in processes:
        pid = int(proc["pid"])
        page = int(proc["page_size"])
        name = process_label(proc)
        for live, key in ((True, "live_blocks"), (False, "freed_blocks")):
            for block in proc.get(key) or ():
                site = _site_of(block)
                group = groups.get((pid, site))
                if group is None:
                    group = groups[(pid, site)] = SiteGroup(pid, name, site)
                kind = str(block.get("kind", "?"))
                pages = int(block.get("pages", 0))
                written = int(block.get("pages_written", 0))
                group.blocks += 1
                group.live += live
                group.bytes += pages * page
                group.written_bytes += written * page
                if kind == "refpage":
                    group.refpage_bytes += pages * page
                group.kinds[kind] = group.kinds.get(kind, 0) + 1
    return sorted(groups.values(), key=lambda g: (-g.bytes, g.pid, g.site_label))


@lru_cache(maxsize=4096)
def _site_label(site: SiteKey) -> str:
    """A site by its function and file:line (addr2line), else SiteKey.label()."""
    from pyalloc.check.locate import Site, name_site  # addr2line: only when asked

    named = name_site(Site(site.module, site.offset, site.symbol or "-"))
    function = named.function or site.symbol
    if not function:
        return site.label()
    where = os.path.basename(named.file) if named.file else os.path.basename(site.module)
    if named.file and named.line:
        where += f":{named.line}"
    elif not named.file:
        where += f"+{site.offset:#x}"
    return f"{function} ({where})"


def name_sites(groups: Iterable[SiteGroup]) -> None:
    """Give groups their function (and file:line) from the binaries' debug information
    where addr2line finds it, as ``check --locate`` names sites (one addr2line per
    site, remembered: the page and its picture name the same sites)."""
    for group in groups:
        if group.site is not None and not group.label:
            group.label = _site_label(group.site)
