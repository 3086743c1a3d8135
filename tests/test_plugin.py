"""The pytest plugin: ``pytest --refmalloc`` re-executes the session under the library.

Each test runs a real inner pytest session (``python -m pytest``) on a small test file
in a temporary directory, as a user would, and looks at its output and exit status.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rmhelpers import clean_env

from pyalloc.pytest_plugin import RefmallocFixture

TIMEOUT = 120

INNER = """
import os

import numpy as np

EXPECTED = int(os.environ["EXPECTED"], 16)


def test_numpy_empty_holds_the_pattern():
    # 1 MiB: a large block built from reference pages; without refmalloc, fresh zeros.
    block = np.empty(1 << 20, np.uint8)
    assert np.all(block == EXPECTED), hex(int(block[0]))


def test_small_numpy_buffer_holds_the_pattern():
    block = np.empty(300, np.uint8)  # small: from the next allocator, memset
    assert np.all(block == EXPECTED)


def test_fails_on_request():
    assert os.environ.get("FAIL") != "1"


def test_fixture(refmalloc):
    print(f"fixture active={refmalloc.active} pattern={refmalloc.pattern:#04x}")
    if refmalloc.active:
        stats = refmalloc.stats()
        assert stats.small_allocs > 0
        assert not refmalloc.pages_written(np.empty(1 << 20, np.uint8)).any()
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(INNER)
    return tmp_path


def inner_pytest(
    project: Path, *args: str, expected: int = 0xAA, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        # Without hypothesis's plugin, which would double each inner session's start-up.
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-p", "no:hypothesispytest", *args],
        cwd=project,
        env=clean_env({"EXPECTED": hex(expected), **env}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def outcome(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr


def test_injects_the_pattern_only_under_refmalloc(project: Path) -> None:
    """numpy.empty memory in the test's own process holds the pattern under --refmalloc."""
    plain = inner_pytest(project, "-k", "numpy", "-p", "no:cacheprovider")
    assert plain.returncode == 1, plain.stdout + plain.stderr
    assert "0x0" in plain.stdout  # a fresh large block is zero without refmalloc
    assert "refmalloc:" not in plain.stdout

    under = inner_pytest(
        project, "--refmalloc", "--refmalloc-pattern", "0x5c", "-k", "numpy", "-s",
        "-p", "no:cacheprovider", expected=0x5C,
    )  # fmt: skip
    assert under.returncode == 0, under.stdout + under.stderr
    assert "2 passed, 2 deselected" in outcome(under)


def test_header_and_fixture(project: Path) -> None:
    result = inner_pytest(project, "--refmalloc", "-s", "-k", "fixture", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    header = [line for line in result.stdout.splitlines() if line.startswith("refmalloc:")]
    assert len(header) == 1
    assert "session runs under refmalloc" in header[0]
    assert "pattern 0xaa" in header[0]
    assert "PYTHONMALLOC=malloc" in header[0]
    assert "fixture active=True pattern=0xaa" in result.stdout
    # Without --refmalloc the fixture still works, and says it is not active.
    result = inner_pytest(project, "-s", "-k", "fixture", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fixture active=False pattern=0xaa" in result.stdout


def test_exit_status_x_and_last_failed(project: Path) -> None:
    """-x stops at the failure, --lf reruns only it; pytest's status comes back each time."""
    first = inner_pytest(project, "--refmalloc", "-x", FAIL="1")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "1 failed, 2 passed" in outcome(first)  # test_fixture not run after -x stop
    again = inner_pytest(project, "--refmalloc", "--lf", FAIL="1")
    assert again.returncode == 1
    assert "1 failed" in outcome(again) and "passed" not in outcome(again)
    fixed = inner_pytest(project, "--refmalloc", "--lf")
    assert fixed.returncode == 0, fixed.stdout
    assert "1 passed" in outcome(fixed)
    nothing = inner_pytest(project, "--refmalloc", "-k", "no_such_test", "-p", "no:cacheprovider")
    assert nothing.returncode == 5


def test_bad_pattern_is_a_usage_error(project: Path) -> None:
    result = inner_pytest(project, "--refmalloc", "--refmalloc-pattern", "0x1ff")
    assert result.returncode == 4
    assert "--refmalloc-pattern: invalid byte '0x1ff': out of range" in result.stderr
    result = inner_pytest(project, "--refmalloc", "--refmalloc-options", "cache")
    assert result.returncode == 4
    assert "--refmalloc-options: 'cache' has no value" in result.stderr


def test_pytest_main_in_a_program_is_refused(project: Path) -> None:
    """pytest.main() cannot be re-executed: a clear usage error, not an exec of the host."""
    code = "import pytest, sys; print('status', pytest.main(['--refmalloc', '-q']))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=project,
        env=clean_env({"EXPECTED": "0xaa"}),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert "status 4" in result.stdout, result.stdout + result.stderr
    assert "needs a session started from the command line" in result.stderr


def test_exec_loop_is_refused(project: Path) -> None:
    """If the re-executed session is still not under refmalloc, say so instead of looping."""
    result = inner_pytest(project, "--refmalloc", PYALLOC_PYTEST_REEXEC="1")
    assert result.returncode == 4
    assert "refmalloc is not serving malloc in it" in result.stderr


def test_fixture_runs_subprocesses(refmalloc: RefmallocFixture) -> None:
    """The fixture in this very session: a child under the library, with its reports."""
    probe = textwrap.dedent(
        """
        import ctypes, os, sys
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        libc.malloc.argtypes = [ctypes.c_size_t]
        print(ctypes.string_at(libc.malloc(64), 4).hex(), os.environ.get("PYTHONMALLOC"))
        if os.fork() == 0:
            sys.exit(0)  # a normal exit: the child writes its report
        os.wait()
        """
    )
    result = refmalloc.run(
        [sys.executable, "-c", probe], options={"pattern": 0x3C}, report=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["3c3c3c3c", "malloc"]
    assert len(result.reports) == 2  # the program and its forked child
    assert {r["pattern"] for r in result.reports} == {0x3C}
    env = refmalloc.env(threshold="64k")
    assert env["LD_PRELOAD"].split(":")[0] == refmalloc.lib_path
    assert "threshold=64k" in env["REFMALLOC_OPTIONS"]


def test_pattern_or_options_without_a_refmalloc_session_is_a_usage_error(project: Path) -> None:
    """Before, --refmalloc-pattern alone was silently ignored for the session."""
    for args in (["--refmalloc-pattern", "0x5c"], ["--refmalloc-options=cache=0"]):
        result = inner_pytest(project, *args, "-k", "fixture")
        assert result.returncode == 4, result.stdout + result.stderr
        assert "applies to a session run under refmalloc: add --refmalloc" in result.stderr
    both = inner_pytest(project, "--refmalloc", "--refmalloc-check")
    assert both.returncode == 4 and "choose one" in both.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("threshold=abc", "--refmalloc-options threshold=abc: invalid size 'abc'"),
        ("pattern=0x1ff", "--refmalloc-options pattern=0x1ff: invalid byte '0x1ff'"),
        ("max_chunk=1k", "--refmalloc-options max_chunk=1k: '1k' is out of range"),
        ("refpages=maybe", "--refmalloc-options refpages=maybe: 'maybe' is not a valid boolean"),
        ("cahce=0", "--refmalloc-options: unknown key 'cahce'; known keys: "),
    ],
)
def test_bad_options_are_usage_errors(project: Path, options: str, message: str) -> None:
    """Checked as `refmalloc run` checks them; before, only the library warned, per process."""
    result = inner_pytest(project, "--refmalloc", "--refmalloc-options", options)
    assert result.returncode == 4, result.stdout + result.stderr
    assert message in result.stderr


def test_fixture_outside_refmalloc_skips_with_a_reason(project: Path) -> None:
    (project / "test_stats.py").write_text(
        "def test_stats(refmalloc):\n    assert refmalloc.stats().small_allocs > 0\n\n\n"
        "def test_require(refmalloc):\n    refmalloc.require()\n    assert refmalloc.active\n"
    )
    result = inner_pytest(project, "-rs", "test_stats.py", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in outcome(result)
    assert "needs a session under refmalloc: run pytest with --refmalloc" in result.stdout
    under = inner_pytest(project, "--refmalloc", "test_stats.py", "-p", "no:cacheprovider")
    assert under.returncode == 0 and "2 passed" in outcome(under), under.stdout
    assert "refmalloc.stats() reads this test process's refmalloc" in result.stdout
    assert "run pytest with --refmalloc" in result.stdout


def test_refmalloc_session_ends_with_a_summary(project: Path) -> None:
    result = inner_pytest(project, "--refmalloc", "-k", "numpy", "-p", "no:cacheprovider")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "refmalloc summary" in out
    for row in ("refpage blocks", "refpage pages written", "eager memset would write",
                "fallbacks"):  # fmt: skip
        assert row in out, out
    plain = inner_pytest(project, "-k", "numpy", "-p", "no:cacheprovider")
    assert "refmalloc summary" not in plain.stdout
