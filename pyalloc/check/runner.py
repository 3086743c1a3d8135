"""Run a command once under a given pattern configuration and capture what it does."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyalloc.inject import child_env

#: personality(2) flag of `setarch -R`: no address-space randomisation.
ADDR_NO_RANDOMIZE = 0x0040000
_QUERY_PERSONALITY = 0xFFFFFFFF

_personality_lock = threading.Lock()
_personality_users = 0
_personality_saved: int | None = None


def _personality(value: int) -> int:
    libc = ctypes.CDLL(None, use_errno=True)
    fn = libc.personality
    fn.argtypes = [ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return int(fn(value))


@contextmanager
def no_aslr() -> Iterator[bool]:
    """Turn ADDR_NO_RANDOMIZE on in this process while the block runs.

    The personality is inherited across fork and exec, so every program started
    meanwhile runs with a fixed address-space layout, as under ``setarch -R``. Yields
    whether the flag could be set (a seccomp filter may forbid personality(2)).
    """
    global _personality_users, _personality_saved
    with _personality_lock:
        if _personality_users == 0:
            current = _personality(_QUERY_PERSONALITY)
            if current >= 0 and not current & ADDR_NO_RANDOMIZE:
                if _personality(current | ADDR_NO_RANDOMIZE) >= 0:
                    _personality_saved = current
            elif current >= 0:
                _personality_saved = None
        _personality_users += 1
        active = _personality(_QUERY_PERSONALITY)
        ok = active >= 0 and bool(active & ADDR_NO_RANDOMIZE)
    try:
        yield ok
    finally:
        with _personality_lock:
            _personality_users -= 1
            if _personality_users == 0 and _personality_saved is not None:
                _personality(_personality_saved)
                _personality_saved = None


@dataclass(frozen=True)
class RunSpec:
    """One run of the command: its label and the REFMALLOC_OPTIONS it gets."""

    label: str
    options: Mapping[str, object]
    #: Its niceness from its start (0: this process's).
    nice: int = 0


@dataclass
class Status:
    """How a run ended: an exit code, a signal, a timeout, or failure to start."""

    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False

    def key(self) -> tuple[int | None, int | None, bool]:
        return (self.exit_code, self.signal, self.timed_out)

    def describe(self) -> str:
        if self.timed_out:
            return "timed out (killed)"
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exit {self.exit_code}"

    def as_json(self) -> dict[str, object]:
        out: dict[str, object] = {"exit": self.exit_code, "signal": self.signal}
        if self.signal is not None:
            try:
                out["signal_name"] = signal.Signals(self.signal).name
            except ValueError:
                out["signal_name"] = None
        if self.timed_out:
            out["timed_out"] = True
        return out


@dataclass
class RunResult:
    spec: RunSpec
    status: Status
    stdout: bytes
    stderr: bytes
    #: Output files: name (as given, or dir/relative) -> content, None when absent.
    files: dict[str, bytes | None] = field(default_factory=dict)
    seconds: float = 0.0

    def observables(self) -> dict[str, bytes | None]:
        return {"stdout": self.stdout, "stderr": self.stderr, **self.files}


class CannotStart(Exception):
    """The command could not be started at all (not found, not executable)."""


class Interrupted(Exception):
    """The check was stopped by a signal (SIGINT, SIGTERM); every run was killed."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


#: Progress events: ("start" | "end", the run's label, its result at "end" or None).
ProgressFn = Callable[[str, "RunSpec", "RunResult | None"], None]


@dataclass
class Runner:
    """Runs ``argv`` under librefmalloc.so with per-run REFMALLOC_OPTIONS."""

    argv: Sequence[str]
    base_env: Mapping[str, str]
    lib: str
    python: bool = False
    outputs: Sequence[str] = ()
    stdin: bytes | None = None
    timeout: float | None = None
    cwd: str | None = None
    jobs: int = 2
    #: Called as each run starts and ends (from the thread that runs it).
    progress: ProgressFn | None = None
    runs_done: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Runs started and not reaped yet, killed by :meth:`cancel`.
    _live: set[subprocess.Popen[bytes]] = field(default_factory=set)
    #: The signal that cancelled the check, once :meth:`cancel` was called.
    cancelled: int | None = None

    def cancel(self, signum: int) -> None:
        """Kill every live run (and its process group); later runs do not start.

        Safe in a signal handler: it takes no lock. A run being started concurrently
        either is in the snapshot taken here, or sees ``cancelled`` once registered.
        """
        if self.cancelled is None:
            self.cancelled = signum
        for proc in list(self._live):
            if proc.returncode is None:
                _kill_group(proc)

    def _check_cancelled(self) -> None:
        if self.cancelled is not None:
            raise Interrupted(self.cancelled)

    def env_for(self, spec: RunSpec) -> dict[str, str]:
        return child_env(
            dict(spec.options), base=self.base_env, lib=self.lib, python_malloc=self.python
        )

    def _collect_outputs(self) -> dict[str, bytes | None]:
        files: dict[str, bytes | None] = {}
        for name in self.outputs:
            path = Path(self.cwd or ".", name)
            if path.is_dir():
                for sub in sorted(p for p in path.rglob("*") if p.is_file()):
                    files[f"{name.rstrip('/')}/{sub.relative_to(path)}"] = _read(sub)
            else:
                files[name] = _read(path)
        return files

    def run(self, spec: RunSpec) -> RunResult:
        self._check_cancelled()
        env = self.env_for(spec)
        if self.progress is not None:
            self.progress("start", spec, None)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.monotonic()
            try:
                proc = _start(
                    spec.nice,
                    list(self.argv),
                    env=env,
                    stdin=subprocess.PIPE if self.stdin is not None else subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=self.cwd,
                    process_group=0,
                )
            except OSError as exc:
                raise CannotStart(f"cannot run {self.argv[0]}: {exc.strerror or exc}") from exc
            self._live.add(proc)
            status = Status()
            try:
                if self.cancelled is not None:  # cancelled while it started
                    _kill_group(proc)
                proc.communicate(self.stdin, timeout=self.timeout)
            except subprocess.TimeoutExpired:
                status.timed_out = True
                _kill_group(proc)
                proc.wait()
            except BaseException:
                _kill_group(proc)
                proc.wait()
                raise
            finally:
                self._live.discard(proc)
            self._check_cancelled()
            elapsed = time.monotonic() - start
            if not status.timed_out:
                if proc.returncode < 0:
                    status.signal = -proc.returncode
                else:
                    status.exit_code = proc.returncode
            out.seek(0)
            err.seek(0)
            result = RunResult(spec, status, out.read(), err.read(), seconds=elapsed)
        result.files = self._collect_outputs()
        with self._lock:
            self.runs_done += 1
        if self.progress is not None:
            self.progress("end", spec, result)
        return result

    def run_all(self, specs: Sequence[RunSpec]) -> list[RunResult]:
        """Run several specs, overlapping up to ``jobs`` of them.

        Output files are shared between runs, so with --output the runs go one by one.
        """
        if self.outputs or self.jobs <= 1 or len(specs) <= 1:
            return [self.run(spec) for spec in specs]
        with ThreadPoolExecutor(max_workers=min(self.jobs, len(specs))) as pool:
            try:
                return list(pool.map(self.run, specs))
            except BaseException:
                # Leaving the block waits for the threads: their runs must end first.
                self.cancel(self.cancelled or signal.SIGTERM)
                raise


@contextmanager
def stop_on_signals(runner: Runner) -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM cancel ``runner`` (every run is killed
    and reaped) and the block ends with :class:`Interrupted`.

    The runs have process groups of their own, so a terminal's Ctrl-C reaches only
    this process; the handler passes the stop on. Outside the main thread, where no
    handler can be set, nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: object) -> None:
        runner.cancel(signum)

    try:
        for sig in signals:
            signal.signal(sig, handler)
        yield
        # A signal after the last run: the check is stopped all the same.
        runner._check_cancelled()
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _start(nice: int, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """Popen, the child at niceness ``nice`` (0: this process's) from its first
    instruction: niceness is per thread and a child inherits its forking thread's,
    so a thread of its own, whose niceness nothing else shares, starts it (set
    after the start instead, the program's first children would escape it)."""
    if not nice:
        return subprocess.Popen(argv, **kwargs)
    started: list[subprocess.Popen[bytes]] = []
    failed: list[BaseException] = []

    def start() -> None:
        with suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, nice)  # 0: this thread
        try:
            started.append(subprocess.Popen(argv, **kwargs))
        except BaseException as exc:  # raised again in the caller
            failed.append(exc)

    thread = threading.Thread(target=start, name="refmalloc-check-start")
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return started[0]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        with suppress(OSError):
            proc.kill()
