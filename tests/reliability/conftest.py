"""Fixtures for the reliability tests (issue 6): real programs, stress, forced
faults, security and fuzzing under refmalloc.

Reuses ``lib``, ``build`` and ``run_prog`` from tests/conftest.py. Adds:

- ``rbuild``: compiles tests/reliability/programs/*.c with the same flags.
- ``soak``: the soak factor from env REFMALLOC_SOAK (unset or 0: CI sizes; 1 or
  more: long runs, minutes each). Tests marked ``soak_only`` are skipped
  unless it is set.
- ``run_cmd``: runs any argv with or without refmalloc (LD_PRELOAD), like
  ``run_prog`` but with a clean environment of our own choosing.
- ``cli``: the argv prefix of ``refmalloc`` (python -m pyalloc) using ``lib``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rmhelpers import clean_env

RELIABILITY = Path(__file__).resolve().parent
RPROGRAMS = RELIABILITY / "programs"


def soak_factor() -> float:
    raw = os.environ.get("REFMALLOC_SOAK", "").strip()
    if not raw:
        return 0.0
    try:
        return float(raw)
    except ValueError:
        pytest.exit(f"REFMALLOC_SOAK={raw!r}: expected a number (1 = soak runs)", returncode=2)


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "soak_only: long soak run, only with REFMALLOC_SOAK=1 (never in CI)"
    )


def pytest_collection_modifyitems(config, items):
    if soak_factor() > 0:
        return
    skip = pytest.mark.skip(reason="soak run: set REFMALLOC_SOAK=1 to run it (minutes)")
    for item in items:
        if "soak_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def soak() -> float:
    return soak_factor()


@pytest.fixture(scope="session")
def rbuild(build):
    """rbuild("stress.c") -> path of the compiled program."""

    def b(source: str, extra_flags: tuple[str, ...] = (), tag: str = "") -> str:
        rel = os.path.relpath(RPROGRAMS / source, RELIABILITY.parent / "programs")
        return build(rel, extra_flags, tag)

    return b


@pytest.fixture(scope="session")
def run_cmd(lib):
    """run_cmd(argv, preload=True, options=None, env=None, cwd=None, input=None,
    timeout=120, text=True) -> CompletedProcess. The environment is the test's
    own, scrubbed of allocator variables (rmhelpers.clean_env), plus env."""

    def run(
        argv,
        preload=True,
        options=None,
        env=None,
        cwd=None,
        input=None,
        timeout=120,
        text=True,
        preexec_fn=None,
    ):
        e = clean_env(env)
        if preload:
            e["LD_PRELOAD"] = lib
        if options is not None:
            e["REFMALLOC_OPTIONS"] = options
        kw = {"text": True, "errors": "replace"} if text else {}
        try:
            return subprocess.run(
                [str(a) for a in argv],
                env=e,
                cwd=cwd,
                input=input,
                capture_output=True,
                timeout=timeout,
                preexec_fn=preexec_fn,
                **kw,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"{' '.join(map(str, argv))} timed out after {timeout}s\n"
                f"stdout: {str(exc.stdout)[-3000:]}\nstderr: {str(exc.stderr)[-3000:]}"
            )

    return run


@pytest.fixture(scope="session")
def cli(lib):
    """argv prefix running the ``refmalloc`` command of the installed package;
    callers pass env REFMALLOC_LIB=lib so it loads the library under test."""
    try:
        import pyalloc  # noqa: F401
    except ImportError as exc:
        pytest.fail(f"the pyalloc package is not installed ({exc}); pip install '.[test]'")
    return [sys.executable, "-m", "pyalloc"]
