"""``pytest --refmalloc --refmalloc-reads`` (issue 13, part 4): read-before-write
findings per test, through the library's context (refmalloc_set_context).

The inner sessions read a never-written page of a 1 MiB block (ctypes: libc malloc,
then one byte read), which the tracker sees as the first touch of that page being a
read. CI runs as root, so userfaultfd is available; the unavailable path is forced with
tests/programs/noufd.c's seccomp filter, as tests/test_reads.py does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rmhelpers import CTYPES_LIBC, REPO, clean_env

from pyalloc import pytest_reads

TIMEOUT = 180

PREAMBLE = (
    CTYPES_LIBC
    + """\


def read_fresh():
    p = libc.malloc(1 << 20)
    value = ctypes.string_at(p + (1 << 19), 1)  # never written: a read before write
    libc.free(p)
    return value


def test_clean():
    p = libc.malloc(1 << 20)
    ctypes.memset(p, 7, 1 << 20)
    assert ctypes.string_at(p + (1 << 19), 1) == b"\\x07"
    libc.free(p)
"""
)

READING = (
    PREAMBLE
    + """

def test_reads_first():
    assert len(read_fresh()) == 1


def test_reads_again():
    assert len(read_fresh()) == 1
"""
)


def inner_pytest(
    project: Path, lib: str, *args: str, launcher: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = clean_env({"REFMALLOC_LIB": lib, "PYTHONPATH": str(REPO)})
    return subprocess.run(
        [
            *launcher,
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "pyalloc.pytest_plugin",
            "-p",
            "no:randomly",
            "-p",
            "no:hypothesispytest",
            "-p",
            "no:cacheprovider",
            *args,
        ],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def section(out: str) -> list[str]:
    """The lines of the "refmalloc reads" section."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if " refmalloc reads " in line)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("=")), len(lines))
    return [line for line in lines[start + 1 : end] if line.strip()]


def findings_per_test(lines: list[str]) -> dict[str, list[str]]:
    tests: dict[str, list[str]] = {}
    current = None
    for line in lines[1:]:
        if line.startswith("  "):
            assert current is not None, lines
            tests[current].append(line.strip())
        elif not line.startswith("refmalloc reads:"):
            current = line
            tests[current] = []
    return tests


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    return tmp_path


def test_the_report_names_exactly_the_reading_tests(project: Path, lib: str) -> None:
    (project / "test_reads.py").write_text(READING)
    cp = inner_pytest(project, lib, "--refmalloc", "--refmalloc-reads", "test_reads.py")
    assert "3 passed" in cp.stdout, cp.stdout + cp.stderr
    # The tests pass, the reads fail the session.
    assert cp.returncode == pytest.ExitCode.TESTS_FAILED, cp.stdout + cp.stderr
    lines = section(cp.stdout)
    assert lines[0] == "refmalloc reads: tracked; 2 read-before-write findings in 2 tests"
    tests = findings_per_test(lines)
    tests.pop(f"{pytest_reads.OUTSIDE}, not counted:", None)  # pytest's own, if any
    # The same read in two tests is reported in each (kept apart by context).
    assert set(tests) == {"test_reads.py::test_reads_first", "test_reads.py::test_reads_again"}
    for found in tests.values():
        (text,) = found
        assert text.startswith("read-before-write: ")
        assert "block of 1048576 bytes allocated at " in text
        assert "page at offset 0x80000" in text


def test_a_clean_file_passes_with_no_read_before_write(project: Path, lib: str) -> None:
    (project / "test_clean.py").write_text(PREAMBLE)
    cp = inner_pytest(project, lib, "--refmalloc", "--refmalloc-reads", "test_clean.py")
    assert cp.returncode == 0, cp.stdout + cp.stderr
    lines = section(cp.stdout)
    assert lines[0] == "refmalloc reads: tracked; no read-before-write in any test"
    assert "test_clean.py::test_clean" not in lines


def test_unavailable_userfaultfd_says_not_tracked_and_runs(project: Path, lib: str, build) -> None:
    noufd = build("noufd.c")
    (project / "test_reads.py").write_text(READING)
    cp = inner_pytest(
        project,
        lib,
        "--refmalloc",
        "--refmalloc-reads",
        "test_reads.py",
        launcher=(str(noufd),),
    )
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "3 passed" in cp.stdout
    (line,) = section(cp.stdout)
    assert line.startswith("refmalloc reads: not tracked: userfaultfd not permitted"), line


def test_reads_without_a_refmalloc_session_is_a_usage_error(project: Path, lib: str) -> None:
    (project / "test_clean.py").write_text(PREAMBLE)
    cp = inner_pytest(project, lib, "--refmalloc-reads", "test_clean.py")
    assert cp.returncode == pytest.ExitCode.USAGE_ERROR
    assert "--refmalloc-reads applies to a session run under refmalloc" in cp.stderr


# ---- the library's context table -----------------------------------------------------

CONTEXTS = """\
import ctypes, sys
from pyalloc import api

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]


def read_fresh():
    p = libc.malloc(1 << 20)
    ctypes.string_at(p + (1 << 19), 1)


for name in ("first", "second", "x" * 5000):
    api.set_context(name)
    read_fresh()
api.set_context(None)
read_fresh()
refused = [api.set_context(f"name {i}") for i in range(3000)].count(False)
read_fresh()  # after a refused name: no context current
assert api.set_context("first"), "a known name is found in a full table"
read_fresh()
print(refused)
api.write_report(sys.argv[1])
"""


def test_context_table_truncates_and_counts_what_it_drops(lib: str, tmp_path: Path) -> None:
    script = tmp_path / "contexts.py"
    script.write_text(CONTEXTS)
    report = tmp_path / "report.json"
    env = clean_env(
        {
            "LD_PRELOAD": lib,
            "PYTHONMALLOC": "malloc",
            "REFMALLOC_OPTIONS": "track_reads=1",
            "PYTHONPATH": str(REPO),
        }
    )
    cp = subprocess.run(
        [sys.executable, str(script), str(report)],
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert cp.returncode == 0, cp.stderr
    refused = int(cp.stdout)
    reads = json.loads(report.read_text())["reads"]
    assert reads["tracked"] is True
    # Every name is interned or counted, the program goes on.
    assert refused > 0 and reads["contexts_dropped"] == refused
    assert reads["contexts"] + refused == 3 + 3000
    ours = [f for f in reads["findings"] if f["block_size"] == 1 << 20]
    contexts = [f["context"] for f in ours]
    # The same read once per context: first (twice: the read after the full table is
    # first's again), second, the long name, and none (cleared; refused).
    assert sorted(contexts, key=str) == sorted(
        [contexts_long := next(c for c in contexts if c and c.startswith("x")), "first"]
        + ["second", None],
        key=str,
    )
    assert next(f["count"] for f in ours if f["context"] == "first") == 2
    assert next(f["count"] for f in ours if f["context"] is None) == 2
    # Truncated, not refused.
    assert set(contexts_long) == {"x"} and 0 < len(contexts_long) < 5000
    # The plugin's renderer on the same report: per context, named.
    lines: list[str] = []
    result = pytest_reads.write_findings(report, lines.append)
    assert result.tracked and len(pytest_reads.in_tests(result)) == 3
    assert "first" in lines and "second" in lines
    assert any(line.startswith(f"refmalloc reads: {refused} test ids") for line in lines)
    assert os.path.exists(report)
