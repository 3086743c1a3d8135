"""pytest plugin: ``pytest --refmalloc-check``.

Runs the test session twice under refmalloc, with fill patterns where every bit
differs (0xaa and 0x55; PYTHONMALLOC=malloc so that Python objects come from malloc
too, address-space randomisation off), side by side, and compares the outcome of
every test. Tests whose outcome differs are run once more under each pattern; those
that repeat their outcomes are reported (test id, which pattern failed, the failure)
and fail the session. Tests whose outcome changes under the same pattern are flaky
and only mentioned.

Registered as the ``pyalloc.pytest_check`` pytest11 entry point; ``-p
pyalloc.pytest_check`` loads it where entry points are disabled.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pyalloc.check.runner import no_aslr
from pyalloc.inject import child_env

#: Set in the child sessions: where to write the outcomes.
RESULTS_VAR = "REFMALLOC_CHECK_RESULTS"
#: Set in confirmation sessions: a file of the node ids to run (others deselected).
ONLY_VAR = "REFMALLOC_CHECK_ONLY"
PATTERNS = (0xAA, 0x55)
OPTION = "--refmalloc-check"
LONGREPR_LIMIT = 4000


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("refmalloc-check")
    group.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="run the session under refmalloc with patterns 0xaa and 0x55 and fail it if "
        "any test's outcome depends on the pattern (uninitialized heap memory)",
    )


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
    path = os.environ.get(RESULTS_VAR)
    if path and not config.pluginmanager.has_plugin("refmalloc-check-recorder"):
        config.pluginmanager.register(_Recorder(path), "refmalloc-check-recorder")


@dataclass
class _Session:
    pattern: int
    returncode: int
    output: str
    exit: int | None
    tests: dict[str, dict[str, str]]


def _child_args(config: pytest.Config) -> list[str]:
    return [a for a in config.invocation_params.args if a != OPTION]


def _run_sessions(
    config: pytest.Config, tmp: Path, tag: str, only: Sequence[str] | None = None
) -> list[_Session]:
    args = _child_args(config)
    procs = []
    for pattern in PATTERNS:
        label = f"{tag}-{pattern:02x}"
        results = tmp / f"{label}.json"
        env = child_env({"pattern": pattern}, python_malloc=True)
        env[RESULTS_VAR] = str(results)
        env.setdefault("PYTHONHASHSEED", "0")
        if only is not None:
            listing = tmp / f"{label}.only"
            listing.write_text("\n".join(only) + "\n")
            env[ONLY_VAR] = str(listing)
        argv = [
            sys.executable,
            "-m",
            "pytest",
            *args,
            "-p",
            "no:cacheprovider",
            f"--basetemp={tmp / label}",
        ]
        out = open(tmp / f"{label}.out", "w+b")  # noqa: SIM115 (closed below)
        procs.append(
            (
                pattern,
                results,
                out,
                subprocess.Popen(
                    argv,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    cwd=config.invocation_params.dir,
                ),
            )
        )
    sessions = []
    for pattern, results, out, proc in procs:
        rc = proc.wait()
        out.seek(0)
        text = out.read().decode("utf-8", "replace")
        out.close()
        try:
            data: dict[str, Any] = json.loads(results.read_text())
        except (OSError, ValueError):
            data = {"exit": None, "tests": {}}
        sessions.append(_Session(pattern, rc, text, data.get("exit"), data.get("tests", {})))
    return sessions


def _outcome(session: _Session, nodeid: str) -> str:
    entry = session.tests.get(nodeid)
    return entry["outcome"] if entry else "not run"


def _differing(a: _Session, b: _Session) -> list[str]:
    ids = list(dict.fromkeys([*a.tests, *b.tests]))
    return [n for n in ids if _outcome(a, n) != _outcome(b, n)]


_BAD = ("failed", "error", "xpassed", "not run")


def _report(a: _Session, b: _Session, confirmed: list[str], flaky: list[str], write: Any) -> None:
    write(
        f"\n{'=' * 20} refmalloc check: patterns 0x{a.pattern:02x} and 0x{b.pattern:02x} "
        f"{'=' * 20}\n"
    )
    write(
        f"session under 0x{a.pattern:02x}: {len(a.tests)} tests, exit {a.returncode}; "
        f"under 0x{b.pattern:02x}: {len(b.tests)} tests, exit {b.returncode}\n"
    )
    if not confirmed:
        write("no test's outcome depends on the pattern\n")
    for nodeid in confirmed:
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
    for nodeid in flaky:
        write(f"flaky (outcome changed under the same pattern, not counted): {nodeid}\n")


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    if not config.getoption("refmalloc_check", False) or os.environ.get(RESULTS_VAR):
        return None
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is not None:
        capture.stop_global_capturing()
    write = sys.stdout.write
    with tempfile.TemporaryDirectory(prefix="refmalloc-pytest-check-") as name, no_aslr():
        tmp = Path(name)
        try:
            a, b = _run_sessions(config, tmp, "s")
        except FileNotFoundError as exc:  # librefmalloc.so missing
            write(f"refmalloc check: {exc}\n")
            return int(pytest.ExitCode.USAGE_ERROR)
        write(a.output)
        if a.exit is None or b.exit is None:
            write(b.output)
            write("refmalloc check: a session under refmalloc did not finish\n")
            return int(pytest.ExitCode.INTERNAL_ERROR)
        differing = _differing(a, b)
        confirmed: list[str] = []
        flaky: list[str] = []
        if differing:
            ca, cb = _run_sessions(config, tmp, "c", only=differing)
            for nodeid in differing:
                same = _outcome(ca, nodeid) == _outcome(a, nodeid) and _outcome(
                    cb, nodeid
                ) == _outcome(b, nodeid)
                (confirmed if same else flaky).append(nodeid)
        _report(a, b, confirmed, flaky, write)
    sys.stdout.flush()
    if confirmed:
        return int(pytest.ExitCode.TESTS_FAILED)
    return max(a.returncode, b.returncode)
