"""``pytest --refmalloc --refmalloc-reads``: read-before-write findings per test.

The session re-executed under refmalloc (``pytest_plugin``) runs with ``track_reads=1``
and the threshold lowered to a page, as ``refmalloc check``'s tracked run does. In it,
:class:`ContextSetter` tells the library the node id of the test running
(``refmalloc_set_context``) from its setup to its teardown, and clears it between tests:
the library records each finding under the test current when the page was read and
keeps the same read in two tests apart. At the end the session's own report is written
and its findings are named by :mod:`pyalloc.check.reads` (addr2line, as ``check``
names them) and printed per test; any finding in a test fails the session (exit status
``TESTS_FAILED``), as ``refmalloc check`` exits 1. Reads outside every test (pytest's
own, e.g. a StringIO of its capture; module-level code at collection) are listed but
do not fail it.

Only the session's own process is reported: the tests' subprocesses run under the
library too but name no test (their reads would have no context).

:func:`write_findings` renders a report directory or file, for other sessions that run
tracked (``--refmalloc-check``'s).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from pyalloc.check import reads as rd

OPTION: Final = "--refmalloc-reads"
#: The heading of findings outside any test (collection, session fixtures' set-up).
OUTSIDE: Final = "(outside any test)"


def add_option(group: Any) -> None:
    group.addoption(
        NO_READS_OPTION,
        action="store_true",
        default=False,
        help="with --refmalloc-check: no read-tracked session (by default a third session "
        "runs under pattern 0x00 with track_reads=1 and reports reads of never-written "
        "pages per test, as --refmalloc-reads does).",
    )
    group.addoption(
        OPTION,
        action="store_true",
        default=False,
        help="with --refmalloc: track reads of never-written pages of heap blocks of a "
        "page or more (userfaultfd; track_reads=1 and the threshold lowered to a page), "
        "report them per test and fail the session if there is any.",
    )


def wanted(config: pytest.Config) -> bool:
    return bool(config.getoption("refmalloc_reads", False))


def check_usage(config: pytest.Config) -> None:
    """--refmalloc-reads applies to a --refmalloc session (--refmalloc-check tracks
    reads itself), --refmalloc-no-reads to --refmalloc-check."""
    if wanted(config) and not config.getoption("refmalloc"):
        more = " (--refmalloc-check tracks reads itself)" * config.getoption("refmalloc_check")
        raise pytest.UsageError(
            f"{OPTION} applies to a session run under refmalloc: add --refmalloc{more}"
        )
    if config.getoption("refmalloc_no_reads") and not config.getoption("refmalloc_check"):
        raise pytest.UsageError(f"{NO_READS_OPTION} applies to --refmalloc-check")


def _tests_of(result: rd.ReadsResult) -> dict[str | None, list[rd.ReadFinding]]:
    by_test: dict[str | None, list[rd.ReadFinding]] = {}
    for finding in result.findings:
        by_test.setdefault(finding.context, []).append(finding)
    return by_test


def finding_text(finding: rd.ReadFinding) -> str:
    """One finding, for people: the reader, the allocation site, block and page."""
    from pyalloc.check import reads as rd

    alloc = rd.where(finding.alloc) if finding.alloc is not None else "an unknown site"
    pages = "" if finding.count == 1 else f" ({finding.count} pages)"
    return (
        f"read-before-write: {finding.read_text()}; block of {finding.block_size} bytes "
        f"allocated at {alloc}, page at offset {finding.page:#x}{pages}"
    )


def in_tests(result: rd.ReadsResult) -> list[rd.ReadFinding]:
    """The findings made while a test ran (those that fail the session)."""
    return [f for f in result.findings if f.context is not None]


def render(result: rd.ReadsResult) -> list[str]:
    """The lines of a tracked session's findings, per test, and whether reads were
    tracked (and why not). Reads outside any test (pytest's own, collection, a
    subprocess) are listed after them, not counted."""
    if not result.tracked:
        return [f"refmalloc reads: not tracked: {result.reason or 'unknown reason'}"]
    by_test = _tests_of(result)
    counted = in_tests(result)
    tests = sorted(t for t in by_test if t is not None)
    if not counted:
        lines = ["refmalloc reads: tracked; no read-before-write in any test"]
    else:
        n = len(counted)
        lines = [
            f"refmalloc reads: tracked; {n} read-before-write finding{'s' * (n != 1)} "
            f"in {len(tests)} test{'s' * (len(tests) != 1)}"
        ]
    for test in tests:
        lines.append(test)
        lines.extend(f"  {finding_text(f)}" for f in by_test[test])
    if None in by_test:
        lines.append(f"{OUTSIDE}, not counted:")
        lines.extend(f"  {finding_text(f)}" for f in by_test[None])
    if result.contexts_dropped:
        lines.append(
            f"refmalloc reads: {result.contexts_dropped} test ids found the library's "
            f"table full: their reads are listed {OUTSIDE}"
        )
    if result.dropped:
        lines.append(f"refmalloc reads: {result.dropped} reads not kept (the table was full)")
    return lines


def collect(report: Path, cwd: str | None = None, env_path: str | None = None) -> rd.ReadsResult:
    """The findings of a report file, or of every ``*.json`` report in a directory."""
    from pyalloc.check import reads as rd

    cwd = os.getcwd() if cwd is None else cwd
    env_path = os.environ.get("PATH") if env_path is None else env_path
    if report.is_dir():
        result = rd.collect(report, cwd, env_path, pattern="*.json")
    else:
        result = rd.collect(report.parent, cwd, env_path, pattern=report.name)
    if result.processes == 0:
        result.reason = "no report with a reads section (the session ran without track_reads=1)"
    return result


def write_findings(
    report: Path, write_line: Any, cwd: str | None = None, env_path: str | None = None
) -> rd.ReadsResult:
    """Write the per-test findings of ``report`` (a JSON report file, or a directory of
    them) with ``write_line`` (e.g. a terminal reporter's); returns them."""
    result = collect(report, cwd, env_path)
    for line in render(result):
        write_line(line)
    return result


#: Set in --refmalloc-check's tracked session: where it writes its report (the
#: parent renders the findings; the session's own exit status is left alone).
REPORT_VAR: Final = "REFMALLOC_CHECK_READS_REPORT"
#: Turns off the tracked session of --refmalloc-check.
NO_READS_OPTION: Final = "--refmalloc-no-reads"


class ContextSetter:
    """In the tracked session: the current test's node id is the library's context.

    With ``report`` (a --refmalloc-check session) the report goes there and nothing
    else is done; without, the findings are printed and fail the session."""

    def __init__(self, report: Path | None = None) -> None:
        self.report = report
        self.result: rd.ReadsResult | None = None
        self.error: str | None = None

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        from pyalloc import api

        api.set_context(item.nodeid)  # setup, call and teardown
        try:
            yield
        finally:
            api.set_context(None)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        from pyalloc import api

        api.set_context(None)
        if self.report is not None:
            try:
                api.write_report(self.report)
            except OSError as exc:  # the parent says there is no report
                self.error = str(exc)
            return
        with tempfile.TemporaryDirectory(prefix="refmalloc-reads-") as tmp:
            path = Path(tmp, f"reads.{os.getpid()}.json")
            try:
                api.write_report(path)
            except OSError as exc:
                self.error = f"refmalloc reads: no report of this session: {exc}"
                return
            self.result = collect(path)
        if in_tests(self.result) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.report is not None:
            return
        terminalreporter.section("refmalloc reads")
        if self.error is not None:
            terminalreporter.write_line(self.error)
        elif self.result is not None:
            for line in render(self.result):
                terminalreporter.write_line(line)


def configure(config: pytest.Config, running_under_refmalloc: bool) -> None:
    """In the session under refmalloc (--refmalloc-reads, or --refmalloc-check's
    tracked session): register the context setter."""
    if config.pluginmanager.has_plugin("refmalloc-reads") or not running_under_refmalloc:
        return
    report = os.environ.get(REPORT_VAR)
    if report:
        config.pluginmanager.register(ContextSetter(Path(report)), "refmalloc-reads")
    elif config.getoption("refmalloc") and wanted(config):
        config.pluginmanager.register(ContextSetter(), "refmalloc-reads")
