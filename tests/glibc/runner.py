"""Run glibc 2.36's own malloc tests under plain glibc and under refmalloc.

The test sources come from Debian's ``glibc-source`` package
(/usr/src/glibc/glibc-2.36.tar.xz); none of glibc's code is in this repository.
The files named in TESTS are extracted from the tarball into a cache directory,
compiled against refmalloc's own stand-in for glibc's support/ (tests/glibc/support)
and run, each in turn, without preload (``glibc``) and under
``LD_PRELOAD=librefmalloc.so`` in the configurations of CONFIGS. For each test and
configuration the runner reports the exit status, the verdict (pass, unsupported,
fail, timeout) and the wall time, and the ratio of that time to the glibc run of the
same test in the same invocation (runs interleaved, median of ``--repeat`` runs).

A test's expected result is its result under glibc: refmalloc must match it.
``--ratios`` also fails when a configuration takes more than ``--max-ratio`` times
glibc's time (the 1.5x criterion of issue 11; a benchmark, never a unit test).

    python tests/glibc/runner.py                 # every test, every configuration
    python tests/glibc/runner.py --ratios        # 3 repeats, fail above 1.5x
    python tests/glibc/runner.py -t tst-mallocfork2 -c threshold-4k --show-output
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import click

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SUPPORT = HERE / "support"
GLIBC_VERSION = "2.36"
TARBALL = Path(f"/usr/src/glibc/glibc-{GLIBC_VERSION}.tar.xz")
APT_PACKAGE = "glibc-source"
DEFAULT_CACHE = Path.home() / ".cache" / "refmalloc-glibc"
DEFAULT_TIMEOUT = 60.0
# The driver's own limit for a test without TIMEOUT (support/test-driver.h).
DRIVER_DEFAULT_TIMEOUT = 20
# The runner gives the driver this factor (TIMEOUTFACTOR) and stops a run
# itself at the test's TIMEOUT: the runner then sees the hang first, and can
# show the hung processes before killing them; the driver stays a backstop.
DRIVER_TIMEOUT_FACTOR = 2

# The driver (support.c) prints this when the test's own TIMEOUT expired.
DRIVER_TIMED_OUT = "Timed out: killed the child process"


@dataclass(frozen=True)
class GlibcTest:
    """One test of glibc's malloc/ directory."""

    name: str
    # Environment the glibc Makefile gives the test (its NAME-ENV variable).
    env: dict[str, str] = field(default_factory=dict)
    # A line of output that means failure although the exit status is 0.
    fail_output: str | None = None
    note: str = ""

    @property
    def source(self) -> str:
        return f"malloc/{self.name}.c"


TESTS: tuple[GlibcTest, ...] = (
    GlibcTest("mallocbug", fail_output=r"^FAIL:", note="prints FAIL but exits 0: output checked"),
    GlibcTest("tst-malloc"),
    GlibcTest("tst-calloc"),
    GlibcTest("tst-realloc"),
    GlibcTest("tst-reallocarray"),
    GlibcTest("tst-memalign"),
    GlibcTest("tst-posix_memalign"),
    GlibcTest("tst-valloc"),
    GlibcTest("tst-pvalloc"),
    GlibcTest("tst-pvalloc-fortify"),
    GlibcTest("tst-mallocalign1", note="malloc-size.h replaced by the shim's (alignment 16)"),
    GlibcTest("tst-mallocfork"),
    GlibcTest("tst-mallocfork2"),
    GlibcTest("tst-mallocfork3"),
    GlibcTest("tst-malloc-fork-deadlock"),
    GlibcTest("tst-malloc-thread-exit"),
    GlibcTest("tst-malloc-thread-fail"),
    GlibcTest("tst-malloc-too-large"),
    GlibcTest("tst-malloc-tcache-leak"),
    GlibcTest("tst-malloc-stats-cancellation"),
    GlibcTest("tst-malloc_info"),
    GlibcTest("tst-mallinfo2"),
    GlibcTest("tst-mallopt"),
    GlibcTest(
        "tst-mxfast",
        env={"GLIBC_TUNABLES": "glibc.malloc.tcache_count=0:glibc.malloc.mxfast=0"},
    ),
    GlibcTest("tst-trim1"),
    GlibcTest("tst-free-errno"),
    GlibcTest("tst-obstack"),
    GlibcTest("tst-tcfree1"),
    GlibcTest("tst-tcfree2"),
    GlibcTest("tst-tcfree3"),
)

# The rest of glibc 2.36's malloc/ tests, and why they are not run.
EXCLUDED: dict[str, str] = {
    "tst-malloc-check": "tests MALLOC_CHECK_=3 of libc_malloc_debug.so, glibc's debugging malloc",
    "tst-malloc-usable": "expects usable size 7 from MALLOC_CHECK_=3 in libc_malloc_debug.so",
    "tst-malloc-usable-tunables": "same as tst-malloc-usable, through glibc.malloc.check=3",
    "tst-malloc-backtrace": "writes glibc's chunk header of a freed block, expects its abort",
    "tst-safe-linking": "corrupts glibc's tcache/fastbin pointers (safe-linking internals)",
    "tst-mallocstate": "malloc_set_state compat symbol of libc_malloc_debug.so",
    "tst-compathooks-off": "__malloc_hook compat symbols of libc_malloc_debug.so",
    "tst-compathooks-on": "__malloc_hook compat symbols of libc_malloc_debug.so",
    "tst-mtrace": "mtrace() of libc_malloc_debug.so and a shell script over its log",
    "tst-interpose-nothread": "the test is itself a replacement malloc (interposition of glibc)",
    "tst-interpose-thread": "the test is itself a replacement malloc (interposition of glibc)",
    "tst-interpose-static-nothread": "a static replacement malloc: LD_PRELOAD cannot apply",
    "tst-interpose-static-thread": "a static replacement malloc: LD_PRELOAD cannot apply",
    "tst-alloc_buffer": "glibc-internal alloc_buffer API (not exported)",
    "tst-dynarray": "glibc-internal dynarray API (not exported)",
    "tst-dynarray-fail": "glibc-internal dynarray API (not exported)",
    "tst-dynarray-at-fail": "glibc-internal dynarray API (not exported)",
    "tst-scratch_buffer": "glibc-internal scratch_buffer API (not exported)",
}


@dataclass(frozen=True)
class Config:
    name: str
    preload: bool
    options: str | None = None
    env: tuple[tuple[str, str], ...] = ()


CONFIGS: tuple[Config, ...] = (
    Config("glibc", preload=False),
    Config("refmalloc", preload=True),
    Config("pattern-0x5c", preload=True, options="pattern=0x5c"),
    Config("threshold-4k", preload=True, options="threshold=4k"),
    # A peer that fills, run only when asked for (-c glibc-perturb): glibc
    # itself writing every block it hands out, so a ratio shows what filling
    # costs a test whatever the allocator.
    Config("glibc-perturb", preload=False, env=(("MALLOC_PERTURB_", "170"),)),
)
CONFIG_BY_NAME = {c.name: c for c in CONFIGS}
TEST_BY_NAME = {t.name: t for t in TESTS}
REFMALLOC_CONFIGS = tuple(c.name for c in CONFIGS if c.preload)

# Variables that would change either allocator behind the runner's back.
SCRUB = (
    "LD_PRELOAD",
    "REFMALLOC_OPTIONS",
    "MALLOC_PERTURB_",
    "MALLOC_CHECK_",
    "MALLOC_TOP_PAD_",
    "MALLOC_MMAP_THRESHOLD_",
    "MALLOC_ARENA_MAX",
    "GLIBC_TUNABLES",
    "TIMEOUTFACTOR",
)


def declared_timeout(source: Path) -> int:
    """The TIMEOUT a test source defines for the driver, else DEFAULT_TIMEOUT (20 s)."""
    m = re.search(r"^\s*#\s*define\s+TIMEOUT\s+(\d+)", source.read_text(), re.MULTILINE)
    return int(m.group(1)) if m else DRIVER_DEFAULT_TIMEOUT


class RunnerError(Exception):
    """Set-up failed (no tarball, no compiler, a build error)."""


def library_path(explicit: str | None = None) -> Path:
    """librefmalloc.so: EXPLICIT, else pyalloc.lib_path() ($REFMALLOC_LIB first)."""
    value = explicit
    if not value:
        sys.path.insert(0, str(REPO))
        try:
            import pyalloc

            value = str(pyalloc.lib_path())
        except Exception as exc:
            raise RunnerError(f"pyalloc.lib_path() failed: {exc}") from exc
    path = Path(value).resolve()
    if not path.is_file():
        raise RunnerError(f"refmalloc library {path} does not exist")
    return path


# ---------------------------------------------------------------- building


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(hashlib.sha256(p).digest())
    return h.hexdigest()[:16]


class Builder:
    """Extracts the test sources from the tarball and compiles them, cached by
    a hash of every input (test source, shim sources, flags)."""

    CFLAGS = ("-std=gnu11", "-O2", "-g", "-pthread", "-D_GNU_SOURCE")
    SHIM_WARNINGS = ("-Wall", "-Wextra", "-Werror")

    def __init__(self, cache: Path, tarball: Path = TARBALL, cc: str = "gcc") -> None:
        self.cache = cache
        self.tarball = tarball
        self.cc = cc
        self.src = cache / f"glibc-{GLIBC_VERSION}"
        self.bin = cache / "bin"
        # Seconds each built test may run: its TIMEOUT, as the driver has it.
        self.limits: dict[str, float] = {}

    def includes(self) -> list[str]:
        # <support/x.h> is SUPPORT/x.h; <libc-diag.h> and the like are in
        # SUPPORT/include, which also makes "../test-skeleton.c" (searched
        # relative to each -I directory) SUPPORT/test-skeleton.c.
        return [f"-I{HERE}", f"-I{SUPPORT / 'include'}"]

    def shim_inputs(self) -> list[bytes]:
        files = sorted(SUPPORT.rglob("*.[ch]"))
        return [f.read_bytes() for f in files] + [" ".join(self.CFLAGS).encode()]

    def extract(self, tests: Sequence[GlibcTest]) -> None:
        """Bring the sources of TESTS out of the tarball (once; later calls find them)."""
        missing = [t for t in tests if not (self.src / t.source).is_file()]
        if not missing:
            return
        if not self.tarball.is_file():
            raise RunnerError(
                f"{self.tarball} not found: install Debian's package {APT_PACKAGE} "
                f"(apt-get install -y {APT_PACKAGE})"
            )
        # Every included test, not just the missing ones: the xz stream is read
        # whole whatever is taken from it.
        wanted = {f"glibc-{GLIBC_VERSION}/{t.source}" for t in TESTS}
        self.src.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.cache) as tmp:
            res = subprocess.run(
                ["tar", "-xJf", str(self.tarball), "-C", tmp, *sorted(wanted)],
                capture_output=True,
                text=True,
            )
            if res.returncode != 0:
                raise RunnerError(f"extracting from {self.tarball} failed:\n{res.stderr}")
            for name in wanted:
                dest = self.cache / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(Path(tmp) / name, dest)
        still = [t.name for t in tests if not (self.src / t.source).is_file()]
        if still:
            raise RunnerError(f"not in {self.tarball}: {', '.join(still)}")

    def _compile(self, cmd: list[str], out: Path) -> None:
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        res = subprocess.run([*cmd, "-o", str(tmp)], capture_output=True, text=True)
        if res.returncode != 0:
            tmp.unlink(missing_ok=True)
            raise RunnerError(f"compile failed:\n{' '.join(cmd)}\n{res.stderr}")
        os.replace(tmp, out)

    def shim_object(self) -> Path:
        self.bin.mkdir(parents=True, exist_ok=True)
        obj = self.bin / f"support-{_digest(self.shim_inputs())}.o"
        if not obj.exists():
            cmd = [self.cc, *self.CFLAGS, *self.SHIM_WARNINGS, *self.includes(), "-c"]
            self._compile([*cmd, str(SUPPORT / "support.c")], obj)
        return obj

    def build(self, test: GlibcTest) -> Path:
        """The executable of TEST (compiled when its inputs changed)."""
        self.extract([test])
        obj = self.shim_object()
        source = self.src / test.source
        self.limits[test.name] = declared_timeout(source)
        key = _digest([source.read_bytes(), obj.read_bytes(), *self.shim_inputs()])
        exe = self.bin / f"{test.name}-{key}"
        if not exe.exists():
            # -w: glibc's tests provoke warnings on purpose (malloc (-1) and
            # the like) and glibc builds them with its own warning set.
            cmd = [self.cc, *self.CFLAGS, "-w", *self.includes(), str(source), str(obj)]
            self._compile(cmd, exe)
        return exe

    def build_file(self, source: Path, defines: Sequence[str] = ()) -> Path:
        """An executable of SOURCE (a C file of tests/glibc/selftest) with the shim."""
        obj = self.shim_object()
        flags = [f"-D{d}" for d in defines]
        key = _digest([source.read_bytes(), obj.read_bytes(), " ".join(flags).encode()])
        exe = self.bin / f"{source.stem}-{key}"
        if not exe.exists():
            cmd = [self.cc, *self.CFLAGS, *self.SHIM_WARNINGS, *flags, *self.includes()]
            self._compile([*cmd, str(source), str(obj)], exe)
        return exe

    def build_all(self, tests: Sequence[GlibcTest], jobs: int = 1) -> dict[str, Path]:
        self.extract(tests)
        self.shim_object()
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            return dict(zip([t.name for t in tests], pool.map(self.build, tests), strict=True))


# ---------------------------------------------------------------- running


@dataclass
class RunResult:
    test: str
    config: str
    status: int | None  # exit status; None when killed by a signal or timed out
    signal: int | None
    timed_out: bool
    seconds: float
    output: str
    # For a run that timed out: its processes and their backtraces.
    hang: str = ""

    @property
    def verdict(self) -> str:
        """pass, unsupported, timeout, fail (exit N) or signal NAME."""
        if self.timed_out:
            return "timeout"
        if self.signal is not None:
            return f"signal {signal.Signals(self.signal).name}"
        if self.status == 0 and not self._failed_output():
            return "pass"
        if self.status == 77:
            return "unsupported"
        if DRIVER_TIMED_OUT in self.output:
            return "timeout"
        return f"fail (exit {self.status})"

    def _failed_output(self) -> bool:
        test = TEST_BY_NAME.get(self.test)
        if test is None or test.fail_output is None:
            return False
        return re.search(test.fail_output, self.output, re.MULTILINE) is not None


def _session_members(sid: int) -> list[int]:
    """Processes of session SID (from /proc/PID/stat: pid (comm) state ppid pgrp session)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid:
            pids.append(int(entry.name))
    return pids


def kill_session(sid: int) -> None:
    """SIGKILL every process of session SID: the test's driver runs the test
    in a process group of its own and the fork tests fork helpers, so the
    session (started for the driver) is what holds them all."""
    for _ in range(50):
        members = _session_members(sid)
        if not members:
            return
        for pid in members:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _proc_line(pid: int) -> str:
    """PID's command, state, parent and kernel wait channel."""
    base = Path("/proc") / str(pid)
    try:
        stat = (base / "stat").read_text()
        wchan = (base / "wchan").read_text().strip() or "-"
    except OSError:
        return f"{pid}: gone"
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    return f"pid {pid} ppid {fields[1]} state {fields[0]} wchan {wchan} ({comm})"


def hang_report(driver: int, max_backtraces: int = 3) -> str:
    """What the processes of a hung run are doing: one line each, and gdb's
    backtraces (when gdb is installed) of the test process and the newest
    others, which is where a fork deadlock shows."""
    members = sorted(_session_members(driver))
    lines = ["[runner] processes at the timeout:"] + [f"  {_proc_line(p)}" for p in members]
    gdb = shutil.which("gdb")
    if gdb is None:
        lines.append("[runner] (install gdb for backtraces of hung processes)")
        return "\n".join(lines) + "\n"
    others = [p for p in members if p != driver and " state Z " not in _proc_line(p)]
    chosen = others[:1] + [p for p in reversed(others[1:])][: max_backtraces - 1]
    for pid in chosen:
        cmd = [gdb, "-nx", "-batch", "-p", str(pid), "-ex", "thread apply all bt 25"]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
            text = "\n".join(ln for ln in res.stdout.splitlines() if ln.startswith(("#", "Thread")))
        except subprocess.TimeoutExpired:
            text = "(gdb timed out)"
        lines.append(f"[runner] backtrace of {_proc_line(pid)}:\n{text}")
    return "\n".join(lines) + "\n"


def run_one(
    test: GlibcTest,
    exe: Path,
    config: Config,
    lib: Path | None,
    timeout: float = DEFAULT_TIMEOUT,
    backtraces: bool = True,
) -> RunResult:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    env.update(test.env)
    env.update(config.env)
    env["TIMEOUTFACTOR"] = str(DRIVER_TIMEOUT_FACTOR)
    if config.preload:
        if lib is None:
            raise RunnerError(f"configuration {config.name} needs the refmalloc library")
        env["LD_PRELOAD"] = str(lib)
        if config.options:
            env["REFMALLOC_OPTIONS"] = config.options
    with tempfile.TemporaryDirectory(prefix=f"{test.name}-") as tmp:
        env["TMPDIR"] = tmp
        out_path = Path(tmp) / "output"
        with open(out_path, "wb") as out:
            start = time.monotonic()
            # Output to a file, not a pipe: helpers a broken test leaves
            # behind would hold a pipe open after the driver has ended.
            proc = subprocess.Popen(
                [str(exe)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                start_new_session=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            seconds = time.monotonic() - start
            hang = hang_report(proc.pid) if timed_out and backtraces else ""
            kill_session(proc.pid)
            proc.wait()
        output = out_path.read_text(errors="replace")
    if timed_out:
        output += f"\n[runner] timed out after {timeout:g} s: process session killed\n"
    rc = proc.returncode
    return RunResult(
        test=test.name,
        config=config.name,
        status=None if timed_out or rc < 0 else rc,
        signal=-rc if rc < 0 and not timed_out else None,
        timed_out=timed_out,
        seconds=seconds,
        output=output,
        hang=hang,
    )


@dataclass
class Cell:
    """The runs of one test under one configuration."""

    runs: list[RunResult]

    @property
    def verdict(self) -> str:
        """The verdict of every run, or 'flaky: A/B' when they disagree."""
        verdicts = sorted({r.verdict for r in self.runs})
        return verdicts[0] if len(verdicts) == 1 else "flaky: " + "/".join(verdicts)

    @property
    def median(self) -> float:
        return statistics.median(r.seconds for r in self.runs)

    def shown(self) -> RunResult:
        """A run worth showing: the first that did not pass, else the first."""
        return next((r for r in self.runs if r.verdict != "pass"), self.runs[0])


def run_items(
    items: Sequence[tuple[GlibcTest, Config]],
    exes: dict[str, Path],
    lib: Path | None,
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[RunResult], None] | None = None,
    limits: dict[str, float] | None = None,
) -> dict[tuple[str, str], Cell]:
    """Run each (test, configuration) of ITEMS, JOBS at a time, in order. A
    run stops at TIMEOUT, or sooner at the test's own limit in LIMITS."""
    cells: dict[tuple[str, str], Cell] = {}

    def one(item: tuple[GlibcTest, Config]) -> RunResult:
        t, c = item
        limit = min(timeout, (limits or {}).get(t.name, timeout))
        r = run_one(t, exes[t.name], c, lib, limit)
        if progress:
            progress(r)
        return r

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for r in pool.map(one, items):
            cells.setdefault((r.test, r.config), Cell([])).runs.append(r)
    return cells


def run_matrix(
    tests: Sequence[GlibcTest],
    configs: Sequence[Config],
    exes: dict[str, Path],
    lib: Path | None,
    repeat: int = 1,
    jobs: int = 1,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Callable[[RunResult], None] | None = None,
    limits: dict[str, float] | None = None,
) -> dict[tuple[str, str], Cell]:
    """Every test under every configuration, REPEAT times. Runs are
    interleaved: each round runs every configuration of a test in turn, so a
    slow phase of the machine hits all configurations alike."""
    order = [(t, c) for _ in range(repeat) for t in tests for c in configs]
    return run_items(order, exes, lib, jobs, timeout, progress, limits)


# ---------------------------------------------------------------- reporting


def ratio(cells: dict[tuple[str, str], Cell], test: str, config: str) -> float | None:
    base, cell = cells.get((test, "glibc")), cells.get((test, config))
    if base is None or cell is None or base.median <= 0:
        return None
    return cell.median / base.median


def mismatches(cells: dict[tuple[str, str], Cell]) -> list[tuple[str, str, str, str]]:
    """(test, config, glibc verdict, its verdict) where a configuration does
    not end as the test does under glibc; and glibc runs that neither pass
    nor are unsupported (a broken shim, or a broken test)."""
    out = []
    for (test, config), cell in sorted(cells.items()):
        base = cells.get((test, "glibc"))
        if config == "glibc":
            if cell.verdict not in ("pass", "unsupported"):
                out.append((test, config, "pass", cell.verdict))
        elif base is not None and cell.verdict != base.verdict:
            out.append((test, config, base.verdict, cell.verdict))
    return out


def slow(
    cells: dict[tuple[str, str], Cell], max_ratio: float, slack: float
) -> list[tuple[str, str, float]]:
    """Configurations slower than MAX_RATIO x glibc by more than SLACK seconds."""
    out = []
    for (test, config), cell in sorted(cells.items()):
        r = ratio(cells, test, config)
        base = cells.get((test, "glibc"))
        if config == "glibc" or r is None or base is None:
            continue
        if r > max_ratio and cell.median - base.median > slack:
            out.append((test, config, r))
    return out


def table(
    cells: dict[tuple[str, str], Cell], tests: Sequence[GlibcTest], configs: Sequence[Config]
) -> str:
    width = max(len(t.name) for t in tests)
    head = f"{'test':<{width}}  " + "  ".join(f"{c.name:<30}" for c in configs)
    lines = [head, "-" * len(head)]
    for t in tests:
        parts = []
        for c in configs:
            cell = cells.get((t.name, c.name))
            if cell is None:
                parts.append(f"{'-':<30}")
                continue
            r = ratio(cells, t.name, c.name)
            rs = f" x{r:.2f}" if r is not None and c.name != "glibc" else ""
            parts.append(f"{cell.verdict + f' {cell.median:.2f}s' + rs:<30}")
        lines.append(f"{t.name:<{width}}  " + "  ".join(parts))
    return "\n".join(lines)


def condense(text: str, head: int = 15, tail: int = 60) -> str:
    """TEXT with runs of one repeated line folded, cut to its first HEAD and
    last TAIL lines (a stuck fork test prints one warning a second)."""
    folded: list[str] = []
    count = 0
    lines = text.rstrip("\n").splitlines()
    for i, line in enumerate(lines):
        count += 1
        if i + 1 < len(lines) and lines[i + 1] == line:
            continue
        folded.append(line if count == 1 else f"{line}   [line repeated {count} times]")
        count = 0
    if len(folded) > head + tail:
        cut = len(folded) - head - tail
        folded = folded[:head] + [f"[... {cut} lines left out ...]"] + folded[-tail:]
    return "\n".join(folded)


def describe(result: RunResult) -> str:
    return (
        f"{result.test} [{result.config}]: {result.verdict}, exit status {result.status}, "
        f"signal {result.signal}, {result.seconds:.2f} s\n--- output ---\n"
        f"{condense(result.output)}\n--- end of output ---"
        + (f"\n{result.hang}" if result.hang else "")
    )


# ---------------------------------------------------------------- CLI


def _select(names: Sequence[str], table_: dict, kind: str) -> list:
    unknown = [n for n in names if n not in table_]
    if unknown:
        raise click.BadParameter(f"unknown {kind}: {', '.join(unknown)}")
    return [table_[n] for n in names]


@click.command(help=__doc__)
@click.option("-t", "--test", "test_names", multiple=True, help="Run only this test (repeatable).")
@click.option(
    "-c",
    "--config",
    "config_names",
    multiple=True,
    type=click.Choice([c.name for c in CONFIGS]),
    help="Run only this configuration (repeatable; glibc is always run as the reference).",
)
@click.option("--lib", type=click.Path(dir_okay=False), help="librefmalloc.so to preload.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=lambda: os.environ.get("REFMALLOC_GLIBC_CACHE", str(DEFAULT_CACHE)),
    show_default="$REFMALLOC_GLIBC_CACHE or ~/.cache/refmalloc-glibc",
    help="Where the sources are extracted and the tests built.",
)
@click.option(
    "--tarball", type=click.Path(dir_okay=False, path_type=Path), default=TARBALL, show_default=True
)
@click.option(
    "--repeat", type=click.IntRange(1), default=None, help="Runs per cell [1, 3 with --ratios]."
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Runs at once (keep 1 when the times matter).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(1),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds before a run counts as hung and its processes are killed.",
)
@click.option(
    "--ratios",
    is_flag=True,
    help="Also fail when a configuration is slower than --max-ratio x glibc.",
)
@click.option("--max-ratio", type=float, default=1.5, show_default=True)
@click.option(
    "--slack",
    type=float,
    default=0.05,
    show_default=True,
    help="Seconds of difference below which a ratio never fails (start-up noise).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every run as JSON to this file.",
)
@click.option(
    "--show-output", is_flag=True, help="Print the output of every run that did not pass."
)
@click.option(
    "--list", "list_only", is_flag=True, help="List included and excluded tests, run nothing."
)
def main(
    test_names: tuple[str, ...],
    config_names: tuple[str, ...],
    lib: str | None,
    cache_dir: Path,
    tarball: Path,
    repeat: int | None,
    jobs: int,
    timeout: float,
    ratios: bool,
    max_ratio: float,
    slack: float,
    json_out: Path | None,
    show_output: bool,
    list_only: bool,
) -> None:
    if list_only:
        for t in TESTS:
            click.echo(f"run      {t.name:<30} {t.note}")
        for name, why in EXCLUDED.items():
            click.echo(f"excluded {name:<30} {why}")
        return
    tests = _select(test_names, TEST_BY_NAME, "test") if test_names else list(TESTS)
    configs = [CONFIG_BY_NAME["glibc"]] + [
        c
        for c in CONFIGS
        if (c.name in config_names and c.name != "glibc")
        or (not config_names and c.name in REFMALLOC_CONFIGS)
    ]
    repeat = repeat or (3 if ratios else 1)
    try:
        library = library_path(lib)
        builder = Builder(Path(cache_dir), tarball)
        exes = builder.build_all(tests, jobs=max(jobs, 2))
    except RunnerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"refmalloc: {library}", err=True)
    done = 0
    total = len(tests) * len(configs) * repeat

    def progress(r: RunResult) -> None:
        nonlocal done
        done += 1
        click.echo(f"[{done}/{total}] {r.test} {r.config}: {r.verdict} {r.seconds:.2f}s", err=True)

    cells = run_matrix(
        tests, configs, exes, library, repeat, jobs, timeout, progress, builder.limits
    )
    click.echo(table(cells, tests, configs))
    bad = mismatches(cells)
    too_slow = slow(cells, max_ratio, slack) if ratios else []
    if json_out:
        json_out.write_text(
            json.dumps(
                [asdict(r) | {"verdict": r.verdict} for c in cells.values() for r in c.runs],
                indent=1,
            )
        )
    for test, config, want, got in bad:
        click.echo(f"\nMISMATCH {test} [{config}]: glibc {want}, here {got}")
        click.echo(describe(cells[(test, config)].shown()))
    if show_output:
        for cell in cells.values():
            for r in cell.runs:
                if r.verdict != "pass" and not any(b[:2] == (r.test, r.config) for b in bad):
                    click.echo("\n" + describe(r))
    for test, config, r in too_slow:
        click.echo(f"SLOW {test} [{config}]: x{r:.2f} glibc's time (limit x{max_ratio:g})")
    click.echo(
        f"\n{len(cells) - len(bad)} cells as under glibc, {len(bad)} not"
        + (f"; {len(too_slow)} above x{max_ratio:g}" if ratios else "")
    )
    if bad or too_slow:
        sys.exit(1)


if __name__ == "__main__":
    main()
