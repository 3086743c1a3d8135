"""pytest plugin (entry point ``pytest11``, ``-p pyalloc.pytest_plugin``): refmalloc for
a test session.

- ``pytest --refmalloc [--refmalloc-pattern 0x5c] [--refmalloc-options k=v,...]``
  re-executes the session, with the same interpreter and command line, under
  ``LD_PRELOAD=librefmalloc.so`` and ``PYTHONMALLOC=malloc``: numpy buffers, C extensions
  and Python objects in the tests' own process then get patterned memory. ``-k``, ``-x``,
  ``--lf`` and every other option work as usual, pytest's exit status is the command's,
  and a short refmalloc summary ends the session.
- ``pytest --refmalloc-check`` runs the session twice under refmalloc, with patterns
  where every bit differs (``--refmalloc-pattern`` and its complement, 0xaa and 0x55 by
  default; address-space randomisation off), side by side, and compares the outcome of
  every test. Tests whose outcome differs are confirmed by the engine refmalloc check
  uses (:mod:`pyalloc.check.differential`): rerun alone, under the baseline and then
  the other pattern, one session after the other; those whose both reruns repeat their
  outcomes are reported (test id, which pattern failed, the failure) and fail the
  session. The others changed outcome under the same pattern: flaky, only mentioned.
  Each session reads a copy of the cache (``--lf`` works); SIGTERM and
  SIGINT kill every session (exit 143, 130).

The ``refmalloc`` fixture runs subprocesses under the library and reads the in-process
counters (see :class:`RefmallocFixture`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import pytest

from pyalloc import pytest_reads
from pyalloc.inject import PRELOAD_VAR, PYTHONMALLOC_VAR, child_env, is_python_command
from pyalloc.library import LIB_NAME, lib_path
from pyalloc.options import ENV_VAR as OPTIONS_VAR
from pyalloc.options import KNOWN_KEYS, format_byte, param_type, parse_byte, parse_options
from pyalloc.rerun import collect_reports, report_dir, report_option

if TYPE_CHECKING:  # pyalloc.check is imported by --refmalloc-check only
    from pyalloc.check.compare import ObservableResult
    from pyalloc.check.differential import Outcome, Plan
    from pyalloc.check.runner import RunSpec

#: Set in the environment of the re-executed session (guards against an exec loop).
REEXEC_VAR: Final = "PYALLOC_PYTEST_REEXEC"
#: Set in --refmalloc-check's child sessions: where to write the outcomes.
RESULTS_VAR: Final = "REFMALLOC_CHECK_RESULTS"
#: Set in --refmalloc-check's child sessions: a file each finished test appends a line to.
PROGRESS_VAR: Final = "REFMALLOC_CHECK_PROGRESS"
#: Set in confirmation sessions: a file of the node ids to run (others deselected).
ONLY_VAR: Final = "REFMALLOC_CHECK_ONLY"
CHECK_OPTION: Final = "--refmalloc-check"
LONGREPR_LIMIT: Final = 4000
#: Seconds between progress lines of --refmalloc-check when the output is no terminal.
PLAIN_PROGRESS_EVERY: Final = 30.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refmalloc", "refmalloc (pattern-initializing malloc)")
    group.addoption(
        "--refmalloc",
        action="store_true",
        default=False,
        help="re-execute the test session under librefmalloc.so (LD_PRELOAD, "
        "PYTHONMALLOC=malloc): fresh heap memory holds the pattern byte.",
    )
    group.addoption(
        "--refmalloc-pattern",
        metavar="BYTE",
        default=None,
        help="pattern byte for --refmalloc (default 0xaa, or the pattern in "
        "REFMALLOC_OPTIONS), or the baseline of --refmalloc-check: 0x00-0xff or 0-255.",
    )
    group.addoption(
        "--refmalloc-options",
        metavar="KEY=VALUE,...",
        default=None,
        help="more REFMALLOC_OPTIONS for --refmalloc or --refmalloc-check, e.g. "
        "threshold=64k,cache=0 (checked as `refmalloc run` checks them).",
    )
    group.addoption(
        CHECK_OPTION,
        action="store_true",
        default=False,
        help="run the session under refmalloc with two patterns where every bit differs "
        "(--refmalloc-pattern and its complement: 0xaa and 0x55 by default) and fail it if "
        "any test's outcome depends on the pattern (uninitialized heap memory).",
    )
    pytest_reads.add_option(group)


def _wanted_pattern(config: pytest.Config) -> int | None:
    text = config.getoption("refmalloc_pattern")
    if text is None:
        return None
    try:
        return parse_byte(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--refmalloc-pattern: {exc}") from None


def _check_option(key: str, value: str) -> object:
    """A REFMALLOC_OPTIONS value checked as `refmalloc run` checks it: the click type
    of its flag, from the options table (UsageError otherwise)."""
    import click  # a dependency of pyalloc; imported when options are given

    if key not in KNOWN_KEYS:
        raise pytest.UsageError(
            f"--refmalloc-options: unknown key {key!r}; known keys: {', '.join(KNOWN_KEYS)}"
        )
    try:
        return param_type(key).convert(value, None, None)
    except click.BadParameter as exc:
        raise pytest.UsageError(f"--refmalloc-options {key}={value}: {exc.message}") from None


def _session_options(config: pytest.Config) -> dict[str, object]:
    options: dict[str, object] = {}
    extra = config.getoption("refmalloc_options")
    if extra:
        for key, value in parse_options(extra):
            if value is None:
                raise pytest.UsageError(
                    f"--refmalloc-options: {key!r} has no value (expected KEY=VALUE,...)"
                )
            options[key] = _check_option(key, value)
    pattern = _wanted_pattern(config)
    if pattern is not None:
        options["pattern"] = pattern
    return options


def _running_under_refmalloc() -> bool:
    if os.environ.get(PYTHONMALLOC_VAR) != "malloc":
        return False
    from pyalloc.api import active  # numpy and cffi: only when it may be true

    return active()


def _from_command_line(config: pytest.Config) -> bool:
    """Was this session started by a command (not pytest.main() inside a program)?"""
    return list(config.invocation_params.args) == sys.argv[1:]


def session_env(options: Mapping[str, object]) -> dict[str, str]:
    """The environment of a test session re-run under refmalloc (--refmalloc's re-exec
    and --refmalloc-check's sessions): the library, PYTHONMALLOC=malloc, ``options``."""
    try:
        return child_env(options, python_malloc=True)
    except (FileNotFoundError, ValueError) as exc:
        raise pytest.UsageError(f"refmalloc: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if os.environ.get(RESULTS_VAR):  # a session run by --refmalloc-check
        return None
    session, check = config.getoption("refmalloc"), config.getoption("refmalloc_check")
    if session and check:
        raise pytest.UsageError("--refmalloc and --refmalloc-check: choose one")
    pytest_reads.check_usage(config)
    if not (session or check):
        for name, dest in (
            ("--refmalloc-pattern", "refmalloc_pattern"),
            ("--refmalloc-options", "refmalloc_options"),
        ):
            if config.getoption(dest) is not None:
                raise pytest.UsageError(
                    f"{name} applies to a session run under refmalloc: add --refmalloc "
                    f"(one session) or {CHECK_OPTION} (two patterns compared)"
                )
        return None
    options = _session_options(config)
    if check:
        return _check_main(config, options)
    if pytest_reads.wanted(config):
        from pyalloc.check.reads import tracked_options

        options = tracked_options(options)
    # Taken out of the environment at once: the tests' own subprocesses must not see it.
    reexecuted = os.environ.pop(REEXEC_VAR, None)
    if _running_under_refmalloc():
        from pyalloc.api import pattern

        wanted = options.get("pattern")
        if wanted is not None and wanted != pattern():
            raise pytest.UsageError(
                f"--refmalloc-pattern {format_byte(int(str(wanted)))}: this session already "
                f"runs under refmalloc with pattern {format_byte(pattern())}"
            )
        return None
    if reexecuted:
        preload = os.environ.get(PRELOAD_VAR, "")
        raise pytest.UsageError(
            f"--refmalloc: the session was re-executed with LD_PRELOAD={preload} but "
            "refmalloc is not serving malloc in it (is the library loadable? is "
            "PYTHONMALLOC overridden?)"
        )
    if not _from_command_line(config):
        raise pytest.UsageError(
            "--refmalloc re-executes the test session under LD_PRELOAD, which needs a "
            "session started from the command line (not pytest.main() in a running "
            "program): run `pytest --refmalloc ...`, or start Python under `refmalloc run`"
        )
    env = session_env(options)
    env[REEXEC_VAR] = "1"
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, *sys.orig_argv[1:]]
    os.execve(sys.executable, argv, env)
    raise AssertionError("unreachable")  # pragma: no cover


def pytest_report_header(config: pytest.Config) -> str | None:
    preloaded = LIB_NAME in os.environ.get(PRELOAD_VAR, "")
    if not (config.getoption("refmalloc") or preloaded):
        return None
    from pyalloc import api

    if not api.active():
        return "refmalloc: not active in this session"
    return (
        f"refmalloc: session runs under refmalloc {api.version()} "
        f"({api.loaded_path()}), pattern {format_byte(api.pattern())}, "
        f"PYTHONMALLOC={os.environ.get(PYTHONMALLOC_VAR, '(unset)')}"
    )


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    """At the end of a --refmalloc session: what refmalloc did in the tests' process."""
    if not config.getoption("refmalloc") or not _running_under_refmalloc():
        return
    from pyalloc import api, reports

    terminalreporter.section("refmalloc summary")
    with tempfile.TemporaryDirectory(prefix="refmalloc-pytest-") as tmp:
        path = Path(tmp, "report.json")
        try:
            api.write_report(path)
            processes = reports.load(path)
        except (OSError, ValueError) as exc:
            terminalreporter.write_line(f"refmalloc: no report of this session: {exc}")
            return
    text = reports.render(reports.summarize(processes), "refmalloc summary")
    for line in text.splitlines():
        terminalreporter.write_line(line)


class RunResult(subprocess.CompletedProcess[Any]):
    """A finished subprocess, plus the refmalloc reports of its processes."""

    def __init__(
        self, completed: subprocess.CompletedProcess[Any], reports: list[dict[str, Any]]
    ) -> None:
        super().__init__(completed.args, completed.returncode, completed.stdout, completed.stderr)
        self.reports = reports


class RefmallocFixture:
    """What the ``refmalloc`` fixture gives a test.

    - ``active``: does this test process run under refmalloc (``pytest --refmalloc``)?
    - ``require()``: skip the test, saying what to pass, unless it does.
    - ``pattern``: the session's pattern byte (the library's when active).
    - ``stats()``, ``pages_written(obj)``, ``page_states(obj)``: in-process, as in
      :mod:`pyalloc`; when the session does not run under refmalloc they skip the
      test, saying to pass ``--refmalloc``.
    - ``env(**options)``: an environment running a program under the library.
    - ``run(args, ...)``: run a program under the library (with its reports).
    """

    def __init__(self, config: pytest.Config, tmp_dir: Path) -> None:
        self._config = config
        self._tmp_dir = tmp_dir

    @property
    def active(self) -> bool:
        from pyalloc.api import active

        return active()

    @property
    def pattern(self) -> int:
        if self.active:
            from pyalloc.api import pattern

            return pattern()
        wanted = _wanted_pattern(self._config)
        if wanted is not None:
            return wanted
        for key, value in parse_options(os.environ.get(OPTIONS_VAR)):
            if key == "pattern" and value is not None:
                try:
                    return parse_byte(value)
                except ValueError:
                    break
        from pyalloc.check.differential import DEFAULT_PATTERN

        return DEFAULT_PATTERN

    @property
    def lib_path(self) -> str:
        return lib_path()

    def _require_active(self, what: str) -> Any:
        from pyalloc import api

        if not api.active():
            pytest.skip(
                f"refmalloc.{what}() reads this test process's refmalloc, which is not "
                "loaded: run pytest with --refmalloc"
            )
        return api

    def require(self) -> None:
        """Skip the test unless this session runs under refmalloc (``--refmalloc``)."""
        from pyalloc import api

        if not api.active():
            pytest.skip("needs a session under refmalloc: run pytest with --refmalloc")

    def stats(self) -> Any:
        return self._require_active("stats").stats()

    def pages_written(self, obj: Any) -> Any:
        return self._require_active("pages_written").pages_written(obj)

    def page_states(self, obj: Any) -> Any:
        return self._require_active("page_states").page_states(obj)

    def env(
        self,
        base: Mapping[str, str] | None = None,
        python_malloc: bool = False,
        **options: object,
    ) -> dict[str, str]:
        """Environment for a program under refmalloc, with the session's pattern unless
        ``options`` says otherwise (keys of REFMALLOC_OPTIONS: pattern=0x5c, ...)."""
        merged: dict[str, object] = {"pattern": self.pattern, **options}
        return child_env(merged, base=base, python_malloc=python_malloc)

    def run(
        self,
        args: Sequence[str],
        *,
        python_malloc: bool | None = None,
        report: bool = False,
        env: Mapping[str, str] | None = None,
        capture_output: bool = True,
        timeout: float | None = 120,
        options: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> RunResult:
        """Run ``args`` under refmalloc (like subprocess.run, output captured by default).

        ``options``: REFMALLOC_OPTIONS entries; ``report=True`` collects the JSON report of
        every process of the program into ``result.reports``; ``python_malloc`` defaults
        to whether ``args`` is a Python command.
        """
        if python_malloc is None:
            python_malloc = is_python_command(args)
        opts = dict(options or {})
        directory: Path | None = None
        if report:
            directory = report_dir(self._tmp_dir, prefix="run-")
            opts["report"] = report_option(directory)
        run_env = self.env(base=env, python_malloc=python_malloc, **opts)
        completed = subprocess.run(
            list(args),
            env=run_env,
            capture_output=capture_output,
            timeout=timeout,
            check=False,
            **kwargs,
        )
        collected: list[dict[str, Any]] = []
        if directory is not None:
            collected, problems = collect_reports(directory, None)
            if problems:
                raise RuntimeError("; ".join(problems))
            shutil.rmtree(directory, ignore_errors=True)
        return RunResult(completed, collected)


@pytest.fixture
def refmalloc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RefmallocFixture]:
    """Run subprocesses under refmalloc and read the in-process counters."""
    yield RefmallocFixture(request.config, tmp_path)


# --- pytest --refmalloc-check ----------------------------------------------------


class _Recorder:
    """In a child session: every test's outcome, written as JSON at the end."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.results: dict[str, dict[str, str]] = {}

    def _set(self, nodeid: str, outcome: str, text: str) -> None:
        entry = self.results.setdefault(nodeid, {"outcome": "passed", "longrepr": ""})
        if entry["outcome"] in ("passed", "skipped") or outcome == "error":
            entry["outcome"] = outcome
            entry["longrepr"] = text[-LONGREPR_LIMIT:]

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        progress = os.environ.get(PROGRESS_VAR)
        if progress and report.when == "teardown":
            with open(progress, "a", encoding="utf-8") as handle:
                handle.write(report.nodeid + "\n")
        text = report.longreprtext if report.outcome != "passed" else ""
        if report.when == "call":
            if hasattr(report, "wasxfail"):
                outcome = "xfailed" if report.skipped else "xpassed"
            else:
                outcome = report.outcome
            self._set(report.nodeid, outcome, text)
        elif report.failed:
            self._set(report.nodeid, "error", text)
        elif report.skipped:
            self._set(report.nodeid, "skipped", text)
        else:
            self.results.setdefault(report.nodeid, {"outcome": "passed", "longrepr": ""})

    @pytest.hookimpl
    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._set(f"collecting {report.nodeid or '.'}", "error", report.longreprtext)

    @pytest.hookimpl
    def pytest_collection_modifyitems(
        self, config: pytest.Config, items: list[pytest.Item]
    ) -> None:
        only = os.environ.get(ONLY_VAR)
        if not only:
            return
        wanted = set(Path(only).read_text().splitlines())
        keep = [item for item in items if item.nodeid in wanted]
        dropped = [item for item in items if item.nodeid not in wanted]
        if dropped:
            config.hook.pytest_deselected(items=dropped)
        items[:] = keep

    @pytest.hookimpl
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        Path(self.path).write_text(json.dumps({"exit": int(exitstatus), "tests": self.results}))


def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get(pytest_reads.REPORT_VAR) or (
        config.getoption("refmalloc") and pytest_reads.wanted(config)
    ):
        pytest_reads.configure(config, _running_under_refmalloc())
    path = os.environ.get(RESULTS_VAR)
    if path and not config.pluginmanager.has_plugin("refmalloc-check-recorder"):
        config.pluginmanager.register(_Recorder(path), "refmalloc-check-recorder")


@dataclass
class _Session:
    """One child session of --refmalloc-check: a run of the differential engine."""

    spec: RunSpec
    returncode: int
    output: str
    exit: int | None
    tests: dict[str, dict[str, str]]

    @property
    def pattern(self) -> int:
        return int(str(self.spec.options["pattern"]))


#: Options of this plugin left out of the child sessions' command line (with a value).
_PARENT_ONLY: Final = {
    CHECK_OPTION: False,
    pytest_reads.NO_READS_OPTION: False,
    "--refmalloc-pattern": True,
    "--refmalloc-options": True,
}


def _child_args(config: pytest.Config) -> list[str]:
    args = list(config.invocation_params.args)
    out: list[str] = []
    skip_value = False
    for arg in args:
        if skip_value:
            skip_value = False
            continue
        name = arg.split("=", 1)[0]
        if name in _PARENT_ONLY:
            skip_value = _PARENT_ONLY[name] and "=" not in arg
            continue
        out.append(arg)
    return out


class _SessionProgress:
    """While the sessions run: how many tests each has finished, and the time.

    On a terminal one status line is redrawn every second; elsewhere a line is printed
    every PLAIN_PROGRESS_EVERY seconds and when a session ends.
    """

    def __init__(self, stream: IO[str], tag: str) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self.tag = tag
        self.start = time.monotonic()
        self.last_line = self.start

    def show(self, counts: Sequence[tuple[int, int, bool]], force: bool = False) -> None:
        now = time.monotonic()
        parts = [
            f"0x{pattern:02x} " + (f"done, {_plural(n, 'test')}" if done else f"{n} done")
            for pattern, n, done in counts
        ]
        what = "confirming" if self.tag == "c" else "sessions"
        text = f"refmalloc check: {what} {'; '.join(parts)}; {now - self.start:.0f}s"
        if self.tty:
            self.stream.write(f"\r\x1b[K{text}")
        elif force or now - self.last_line >= PLAIN_PROGRESS_EVERY:
            self.stream.write(text + "\n")
            self.last_line = now
        else:
            return
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def _session_cache(config: pytest.Config, where: Path) -> Path:
    """A copy of the session's cache directory for one child session: --lf, --ff and
    --nf read it as in the session itself, and what the child sessions record (the
    failures under the other pattern) never reaches the real one."""
    # As the cache provider resolves cache_dir (it is not configured yet here).
    value = os.path.expandvars(os.path.expanduser(str(config.getini("cache_dir"))))
    source = config.rootpath / value
    if source.is_dir():
        shutil.copytree(source, where, dirs_exist_ok=True)
    else:
        where.mkdir(parents=True, exist_ok=True)
    return where


class _Terminated(Exception):
    """SIGTERM reached the parent of --refmalloc-check's sessions."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`_Terminated`, so that the sessions
    are killed and reaped on the way out (SIGINT raises KeyboardInterrupt already)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return 0


def _reads_report(tmp: Path, spec: RunSpec) -> Path:
    """Where a read-tracked session writes its report."""
    return tmp / f"{spec.label}.reads.json"


def _start_session(
    config: pytest.Config, args: Sequence[str], tmp: Path, spec: RunSpec, only: Sequence[str] | None
) -> tuple[int, Path, Path, IO[bytes], subprocess.Popen[bytes]]:
    """Start one child session: its pattern, results and progress files, output, process."""
    pattern = int(str(spec.options["pattern"]))
    label = f"{spec.label}-{pattern:02x}"
    results = tmp / f"{label}.json"
    progress = tmp / f"{label}.progress"
    env = session_env(spec.options)
    env[RESULTS_VAR] = str(results)
    env[PROGRESS_VAR] = str(progress)
    env.setdefault("PYTHONHASHSEED", "0")
    if spec.options.get("track_reads"):
        env[pytest_reads.REPORT_VAR] = str(_reads_report(tmp, spec))
    if only is not None:
        listing = tmp / f"{label}.only"
        listing.write_text("\n".join(only) + "\n")
        env[ONLY_VAR] = str(listing)
    argv = [
        sys.executable,
        "-m",
        "pytest",
        *args,
        "-o",
        f"cache_dir={_session_cache(config, tmp / f'{label}.cache')}",
        f"--basetemp={tmp / label}",
    ]
    out = open(tmp / f"{label}.out", "w+b")  # noqa: SIM115 (closed by the caller)
    proc = subprocess.Popen(
        argv,
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=config.invocation_params.dir,
    )
    return pattern, results, progress, out, proc


def _run_sessions(
    config: pytest.Config,
    tmp: Path,
    tag: str,
    specs: Sequence[RunSpec],
    only: Sequence[str] | None = None,
) -> list[_Session]:
    """Run a session for every spec, side by side, and read their outcomes."""
    args = _child_args(config)
    procs: list[tuple[int, Path, Path, IO[bytes], subprocess.Popen[bytes]]] = []
    shown = _SessionProgress(sys.stderr, tag)
    try:
        # Started inside the try: a signal while the later ones start kills the first.
        for spec in specs:
            procs.append(_start_session(config, args, tmp, spec, only))
        ended: set[int] = set()
        while True:
            before = len(ended)
            ended |= {i for i, (*_, proc) in enumerate(procs) if proc.poll() is not None}
            counts = [
                (pattern, _count_lines(progress), i in ended)
                for i, (pattern, _, progress, _, _) in enumerate(procs)
            ]
            # A plain line whenever a session ends.
            shown.show(counts, force=len(ended) > before)
            if len(ended) == len(procs):
                break
            time.sleep(1.0 if shown.tty else 0.2)
    except BaseException:
        for *_, proc in procs:
            proc.kill()
            proc.wait()
        raise
    finally:
        shown.close()
    sessions = []
    for spec, (_pattern, results, _progress, out, proc) in zip(specs, procs, strict=True):
        rc = proc.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        out.close()
        try:
            data: dict[str, Any] = json.loads(results.read_text())
        except (OSError, ValueError):
            data = {"exit": None, "tests": {}}
        sessions.append(_Session(spec, rc, text, data.get("exit"), data.get("tests", {})))
    return sessions


def _outcome(session: _Session, nodeid: str) -> str:
    entry = session.tests.get(nodeid)
    return entry["outcome"] if entry else "not run"


def _compare_outcomes(
    base: Sequence[_Session],
    other: Sequence[_Session],
    patterns: tuple[int, int],
    names: Sequence[str] | None,
) -> list[ObservableResult]:
    """Each test's outcome compared between sessions: for the differential engine."""
    from pyalloc.check.compare import ObservableResult

    if names is None:
        names = list(dict.fromkeys(n for s in (*base, *other) for n in s.tests))
    found = []
    for nodeid in names:
        seen_base = {_outcome(s, nodeid) for s in base}
        seen_other = {_outcome(s, nodeid) for s in other}
        if len(seen_base) > 1 or len(seen_other) > 1:
            state = "excluded"  # changed under the same pattern
        else:
            state = "same" if seen_base == seen_other else "differs"
        found.append(ObservableResult(nodeid, state))
    return found


_BAD = ("failed", "error", "xpassed", "not run")


def _report(
    a: _Session, others: Sequence[_Session], outcomes: Sequence[Outcome], write: Any
) -> None:
    """The differential's verdict: each test whose outcome depends on the pattern,
    against each other session (0x55; 0x00 when reads were tracked)."""
    names = ", ".join(f"0x{s.pattern:02x}" for s in others)
    write(f"\n{'=' * 20} refmalloc check: patterns 0x{a.pattern:02x} and {names} {'=' * 20}\n")
    write(
        f"session under 0x{a.pattern:02x}: {_plural(len(a.tests), 'test')}, exit "
        f"{a.returncode}; "
        + "; ".join(
            f"under 0x{s.pattern:02x}: {_plural(len(s.tests), 'test')}, exit {s.returncode}"
            for s in others
        )
        + "\n"
    )
    if not any(o.confirmed for o in outcomes):
        write("no test's outcome depends on the pattern\n")
    for b, outcome in zip(others, outcomes, strict=True):
        for nodeid in outcome.confirmed:
            oa, ob = _outcome(a, nodeid), _outcome(b, nodeid)
            failed = [f"0x{s.pattern:02x}" for s in (a, b) if _outcome(s, nodeid) in _BAD]
            write(
                f"PATTERN-DEPENDENT {nodeid}: {oa} under 0x{a.pattern:02x}, "
                f"{ob} under 0x{b.pattern:02x}"
                + (f" (fails under {' and '.join(failed)})" if failed else "")
                + "\n"
            )
            for session in (a, b):
                entry = session.tests.get(nodeid)
                if entry and entry["longrepr"]:
                    write(f"--- failure under 0x{session.pattern:02x}:\n{entry['longrepr']}\n")
    for nodeid in dict.fromkeys(n for o in outcomes for n in o.not_counted):
        write(f"flaky (outcome changed under the same pattern, not counted): {nodeid}\n")


def _check_main(config: pytest.Config, options: dict[str, object]) -> int:
    from pyalloc.check.differential import DEFAULT_PATTERN, other_pattern

    base = options.pop("pattern", DEFAULT_PATTERN)
    assert isinstance(base, int)
    patterns = (base, other_pattern(base))
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    write = sys.stdout.write
    try:
        with _sigterm_raises():
            return _check_sessions(config, options, patterns, write)
    except (_Terminated, KeyboardInterrupt) as exc:
        sig = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
        sys.stderr.write(f"refmalloc check: stopped by {sig.name}; every session was killed\n")
        return 128 + sig


#: Outcomes that make a pytest session exit 1 (tests failed).
_FAILING: Final = ("failed", "error")


def _plan(options: Mapping[str, object], patterns: tuple[int, int], reads: bool) -> Plan[_Session]:
    """The sessions of --refmalloc-check, for the differential engine.

    The first phase is one session per pattern, side by side (no baseline rerun: on
    two cores it would be a third whole session, half as much wall time again, and
    the confirmation has one), and with ``reads`` a read-tracked session (R1) under
    zero, as ``refmalloc check``'s: its findings are reported per test, and its
    outcomes are the zero-pattern differential (a test of == 0 or NULL on an
    uninitialized field passes under 0xaa and 0x55 alike), confirmed by a plain
    session under zero (Z2). The confirmation reruns only the differing tests, one
    session after the other, the baseline first.
    """
    from pyalloc.check.differential import Plan, Variant
    from pyalloc.check.reads import tracked_options
    from pyalloc.check.runner import RunSpec

    pa, pb = patterns

    def spec(label: str, pattern: int) -> RunSpec:
        return RunSpec(label, {**options, "pattern": pattern})

    first = [spec("A1", pa), spec("B1", pb)]
    variants = [Variant("uninitialized", "B1", spec("B2", pb), patterns)]
    if reads:
        zero = 0 not in patterns
        tracked = tracked_options({**options, "pattern": 0 if zero else pa})
        first.append(RunSpec("R1", tracked))
        if zero:
            variants.append(Variant("uninitialized", "R1", spec("Z2", 0), (pa, 0)))
    return Plan(
        first=first,
        baseline=["A1"],
        confirm_baseline=spec("A2", pa),
        variants=variants,
        parallel=True,
        restrict=True,
    )


def _show_session(session: _Session, write: Any) -> None:
    tracked = ", reads tracked" if session.spec.options.get("track_reads") else ""
    write(
        f"{'-' * 20} session under 0x{session.pattern:02x} "
        f"(exit {session.returncode}{tracked}) {'-' * 20}\n"
    )
    write(session.output)


def _check_sessions(
    config: pytest.Config, options: dict[str, object], patterns: tuple[int, int], write: Any
) -> int:
    from pyalloc.check.differential import run_plan
    from pyalloc.check.runner import no_aslr

    reads = not config.getoption("refmalloc_no_reads")
    with tempfile.TemporaryDirectory(prefix="refmalloc-pytest-check-") as name, no_aslr():
        tmp = Path(name)

        def execute(
            specs: Sequence[RunSpec], parallel: bool, only: Sequence[str] | None
        ) -> list[_Session]:
            if not parallel:
                return [s for spec in specs for s in _run_sessions(config, tmp, "c", [spec], only)]
            # The first phase: shown before any confirmation.
            sessions = _run_sessions(config, tmp, "s", specs, only)
            for session in sessions:
                _show_session(session, write)
            if any(s.exit is None for s in sessions):
                raise _Unfinished()
            return sessions

        plan = _plan(options, patterns, reads)
        try:
            done = run_plan(plan, execute, _compare_outcomes)
        except _Unfinished:
            write("refmalloc check: a session under refmalloc did not finish\n")
            return int(pytest.ExitCode.INTERNAL_ERROR)
        a = done.by_label["A1"]
        others = [done.by_label[v.first] for v in plan.variants]
        _report(a, others, done.outcomes, write)
        found = []
        if reads:
            tracked = done.by_label["R1"]
            result = pytest_reads.collect(
                _reads_report(tmp, tracked.spec), str(config.invocation_params.dir)
            )
            write(f"\n{'=' * 20} refmalloc check: reads of never-written pages {'=' * 20}\n")
            for line in pytest_reads.render(result):
                write(line + "\n")
            found = pytest_reads.in_tests(result)
    sys.stdout.flush()
    flaky = [n for o in done.outcomes for n in o.not_counted]
    if found or any(o.confirmed for o in done.outcomes):
        return int(pytest.ExitCode.TESTS_FAILED)
    worst = max(s.returncode for s in (a, done.by_label["B1"]))
    if worst != pytest.ExitCode.TESTS_FAILED:
        return worst
    # Tests failed: those that failed in both sessions, or in the baseline rerun of a
    # flaky one (run alone). A failure only side by side was the check's own load.
    rerun = done.by_label.get("A2")
    for nodeid in dict.fromkeys([*a.tests, *done.by_label["B1"].tests]):
        settled = _outcome(rerun, nodeid) if rerun and nodeid in flaky else _outcome(a, nodeid)
        if settled in _FAILING:
            return worst
    return int(pytest.ExitCode.OK)


class _Unfinished(Exception):
    """A session of the first phase wrote no outcomes (it crashed or was killed)."""
