"""pytest plugin (entry point ``pytest11``): run a test session under refmalloc.

``pytest --refmalloc [--refmalloc-pattern 0x5c]`` re-executes the session, with the same
interpreter and command line, under ``LD_PRELOAD=librefmalloc.so`` and
``PYTHONMALLOC=malloc``: numpy buffers, C extensions and Python objects in the tests'
own process then get patterned memory. ``-k``, ``-x``, ``--lf`` and every other option
work as usual, and pytest's exit status is the command's.

The ``refmalloc`` fixture runs subprocesses under the library and reads the in-process
counters (see :class:`RefmallocFixture`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import pytest

from pyalloc.inject import PRELOAD_VAR, PYTHONMALLOC_VAR, child_env, is_python_command
from pyalloc.library import LIB_NAME, lib_path
from pyalloc.options import ENV_VAR as OPTIONS_VAR
from pyalloc.options import format_byte, parse_byte, parse_options

#: Set in the environment of the re-executed session (guards against an exec loop).
REEXEC_VAR: Final = "PYALLOC_PYTEST_REEXEC"


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
        help="pattern byte for --refmalloc: 0x00-0xff or 0-255 (default 0xaa, or the "
        "pattern in REFMALLOC_OPTIONS).",
    )
    group.addoption(
        "--refmalloc-options",
        metavar="KEY=VALUE,...",
        default=None,
        help="more REFMALLOC_OPTIONS for --refmalloc, e.g. threshold=64k,cache=0.",
    )


def _wanted_pattern(config: pytest.Config) -> int | None:
    text = config.getoption("refmalloc_pattern")
    if text is None:
        return None
    try:
        return parse_byte(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--refmalloc-pattern: {exc}") from None


def _session_options(config: pytest.Config) -> dict[str, object]:
    options: dict[str, object] = {}
    extra = config.getoption("refmalloc_options")
    if extra:
        for key, value in parse_options(extra):
            if value is None:
                raise pytest.UsageError(
                    f"--refmalloc-options: {key!r} has no value (expected KEY=VALUE,...)"
                )
            options[key] = value
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


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("refmalloc"):
        return None
    options = _session_options(config)
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
    try:
        env = child_env(options, python_malloc=True)
    except (FileNotFoundError, ValueError) as exc:
        raise pytest.UsageError(f"--refmalloc: {exc}") from None
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
    - ``pattern``: the session's pattern byte (the library's when active).
    - ``stats()``, ``pages_written(obj)``, ``page_states(obj)``: in-process, as in
      :mod:`pyalloc`; they raise :class:`pyalloc.NotLoadedError` when not active.
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
        return 0xAA

    @property
    def lib_path(self) -> str:
        return lib_path()

    def stats(self) -> Any:
        from pyalloc.api import stats

        return stats()

    def pages_written(self, obj: Any) -> Any:
        from pyalloc.api import pages_written

        return pages_written(obj)

    def page_states(self, obj: Any) -> Any:
        from pyalloc.api import page_states

        return page_states(obj)

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
        from pyalloc import reports

        if python_malloc is None:
            python_malloc = is_python_command(args)
        opts = dict(options or {})
        directory: Path | None = None
        if report:
            directory = Path(tempfile.mkdtemp(prefix="run-", dir=self._tmp_dir))
            opts["report"] = str(directory / "report-%p.json")
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
            collected, problems = reports.collect(directory, None)
            if problems:
                raise RuntimeError("; ".join(problems))
            shutil.rmtree(directory, ignore_errors=True)
        return RunResult(completed, collected)


@pytest.fixture
def refmalloc(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RefmallocFixture]:
    """Run subprocesses under refmalloc and read the in-process counters."""
    yield RefmallocFixture(request.config, tmp_path)
