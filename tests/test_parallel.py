"""Issue 15 item 2: the suite runs in parallel (pytest-xdist) and then its serial tests
alone, as scripts/test.sh says; the one-time builds that every worker's session
fixtures ask for are made once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _collected(*args: str) -> list[str]:
    cp = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert cp.returncode in (0, 5), cp.stdout + cp.stderr
    return [line for line in cp.stdout.splitlines() if "::" in line]


def _words(text: str) -> set[str]:
    return {w for w in ("/proc/sys/", "write_text") if w in text}


def test_serial_tests_option_splits_the_suite() -> None:
    """--serial-tests=only keeps the tests marked serial, =skip all the others; among
    the serial ones, every test that writes a machine-wide setting (/proc/sys)."""
    sources = [p for p in (REPO / "tests").rglob("test_*.py") if p.name != "test_parallel.py"]
    writers = [p for p in sources if {"/proc/sys/", "write_text"} <= _words(p.read_text())]
    assert REPO / "tests" / "test_dropin_limits.py" in writers  # its overcommit tests
    files = sorted({*map(str, writers), "tests/test_sparse.py"})
    serial = _collected("--serial-tests=only", *files)
    parallel = _collected("--serial-tests=skip", *files)
    assert serial and parallel and not set(serial) & set(parallel)
    assert "tests/test_sparse.py::test_64_gib_of_live_sparse_blocks" in serial
    limits = "tests/test_dropin_limits.py::test_setrlimit_as_mid_run_leaves_the_program_its_memory"
    assert limits in parallel
    for p in writers:
        text = p.read_text()
        names = [ln.split("(")[0][4:] for ln in text.splitlines() if ln.startswith("def test_")]
        for name in names:
            body = text.split(f"def {name}(", 1)[1].split("\ndef ", 1)[0]
            if "/proc/sys/" in body and "write_text" in body:
                rel = p.relative_to(REPO)
                assert any(t.startswith(f"{rel}::{name}") for t in serial), f"{rel}::{name}"


def _counting_gcc(tmp_path: Path) -> tuple[Path, Path]:
    """A gcc on PATH that logs each call, then is the real gcc (slowly, so that
    two builders asking at once overlap)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "calls"
    gcc = bindir / "gcc"
    gcc.write_text(f'#!/bin/sh\necho "$$" >> {log}\nsleep 0.5\nexec /usr/bin/gcc "$@"\n')
    gcc.chmod(0o755)
    return bindir, log


def test_two_workers_asking_for_one_program_compile_it_once(
    build, run_prog, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The programs directory is shared by the workers of a parallel run: the
    second that asks waits for the first and gets its program, whole."""
    bindir, log = _counting_gcc(tmp_path)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    outdir = tmp_path / "programs"
    outdir.mkdir()
    builder = type(build)(outdir)  # conftest's Builder, on a directory of its own
    got: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            got.append(builder("pattern.c", tag="-xdist"))
        except BaseException as exc:  # pytest.fail raises a BaseException
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert len(got) == 2 and got[0] == got[1]
    assert len(log.read_text().split()) == 1, log.read_text()
    assert run_prog(got[0], ["reuse-small"]).returncode == 0
    leftovers = [p.name for p in outdir.iterdir() if ".tmp" in p.name]
    assert not leftovers, leftovers


# scripts/test.sh with a stand-in python: each call logs its arguments and exits with
# the next status of $CODES.
FAKE_PYTHON = """#!/bin/bash
echo "$*" >> "$CALLS"
n=$(wc -l < "$CALLS")
set -- $CODES
exit "${!n}"
"""


def _test_sh(tmp_path: Path, codes: str, *args: str) -> tuple[int, list[str]]:
    bindir = tmp_path / "bin"
    bindir.mkdir(exist_ok=True)
    (bindir / "python").write_text(FAKE_PYTHON)
    (bindir / "python").chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "CALLS": str(calls), "CODES": codes}  # fmt: skip
    cp = subprocess.run(
        ["bash", str(REPO / "scripts" / "test.sh"), "--no-setup", *args],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return cp.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_test_sh_runs_the_parallel_part_then_the_serial_part(tmp_path: Path) -> None:
    status, calls = _test_sh(tmp_path, "0 0", "tests/test_cli.py", "-k", "report")
    assert status == 0
    assert calls == [
        "-m pytest -n auto --dist loadgroup --serial-tests=skip tests/test_cli.py -k report",
        "-m pytest -n 0 --serial-tests=only tests/test_cli.py -k report",
    ]


@pytest.mark.parametrize(
    ("codes", "status", "parts"),
    [
        ("1 0", 1, 2),  # a failure in either part fails the run, both parts run
        ("0 1", 1, 2),
        ("5 0", 0, 2),  # one part with nothing selected: the other decides
        ("0 5", 0, 2),
        ("5 5", 5, 2),  # nothing ran at all: pytest's "no tests collected"
        ("2 0", 2, 1),  # interrupted or a usage error: no second part
        ("4 0", 4, 1),
    ],
)
def test_test_sh_exit_status(tmp_path: Path, codes: str, status: int, parts: int) -> None:
    got, calls = _test_sh(tmp_path, codes)
    assert (got, len(calls)) == (status, parts), calls
