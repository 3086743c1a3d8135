"""Helpers shared by the refmalloc tests (imported by conftest and test modules)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
REPO = TESTS_DIR.parent
PROGRAMS = TESTS_DIR / "programs"
INCLUDE = REPO / "allocator" / "include"

# Allocators the stacking tests put after refmalloc, with the Debian package
# that provides each (CI installs them; a missing one is a failure, not a skip).
STACKED = {
    "jemalloc": ("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "libjemalloc2"),
    "mimalloc": ("/usr/lib/x86_64-linux-gnu/libmimalloc.so.2", "libmimalloc2.0"),
    "tcmalloc": ("/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
}

# Environment variables that would change allocator behaviour behind our back.
_SCRUB = (
    "LD_PRELOAD",
    "REFMALLOC_OPTIONS",
    "MALLOC_PERTURB_",
    "MALLOC_CHECK_",
    "GLIBC_TUNABLES",
    "MALLOC_CONF",
    "MIMALLOC_VERBOSE",
    "PYTHONMALLOC",
    "TEST_PATTERN",
    "TEST_THRESHOLD",
    "TEST_EXPECT_CACHE",
)


#: The head of a generated test file that calls libc's malloc and free through ctypes.
CTYPES_LIBC = """\
import ctypes

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
"""


def clean_env(extra: dict | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    if extra:
        env.update({k: str(v) for k, v in extra.items()})
    return env


def describe(cp: subprocess.CompletedProcess) -> str:
    return (
        f"command: {' '.join(map(str, cp.args))}\nexit: {cp.returncode}\n"
        f"--- stdout ---\n{cp.stdout[-6000:]}\n--- stderr ---\n{cp.stderr[-6000:]}"
    )


def assert_ok(cp: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """The program exited 0 (it checks its own invariants and fails otherwise)."""
    assert cp.returncode == 0, describe(cp)
    return cp


def refmalloc_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("refmalloc")]


def run_cli(lib: str, *args: str, timeout: int = 120, **kwargs) -> subprocess.CompletedProcess:
    """`python -m pyalloc ARGS...` with REFMALLOC_LIB=lib in a clean environment
    (text output; kwargs go to subprocess.run, e.g. cwd or input)."""
    return subprocess.run(
        [sys.executable, "-m", "pyalloc", *args],
        env=clean_env({"REFMALLOC_LIB": lib}),
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
