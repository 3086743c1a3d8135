"""Shared fixtures for the refmalloc test suite.

- ``lib``: path of librefmalloc.so (env REFMALLOC_LIB, else pyalloc.lib_path(),
  else a CMake build of the repository into the run's shared temporary directory).
- ``build``: compiles tests/programs/*.c / *.cpp (cached by content hash).
- ``run_prog``: runs a program with LD_PRELOAD=lib and REFMALLOC_OPTIONS.

Parallel runs (pytest-xdist, ``-n auto``; scripts/test.sh states how the suite runs):
a session fixture runs once in every worker, so the one-time builds above go to a
directory all workers of the run share (``shared_tmp``), each under a lock. Tests
marked ``serial`` need the machine to themselves; ``--serial-tests=skip`` leaves
them out and ``--serial-tests=only`` runs nothing else (scripts/test.sh runs the
first with ``-n auto``, then the second alone).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rmhelpers import INCLUDE, PROGRAMS, REPO, clean_env  # noqa: E402

SERIAL_CHOICES = ("all", "skip", "only")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--serial-tests",
        choices=SERIAL_CHOICES,
        default="all",
        help="tests marked serial (they need the machine to themselves): run them with the "
        "others (all, the default), leave them out (skip: the parallel part of "
        "scripts/test.sh) or run nothing else (only)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    choice = config.getoption("--serial-tests")
    if choice == "all":
        return
    keep = choice == "only"
    selected = [item for item in items if (item.get_closest_marker("serial") is not None) == keep]
    if len(selected) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in selected])
        items[:] = selected


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Path:
    """A directory every process of this test run sees: under pytest-xdist the
    parent of the worker's own base directory (pytest-N/, which holds popen-gw0/,
    popen-gw1/, ...), else this session's base directory. Never the parent in a
    run without workers: that one holds every run's directories."""
    base = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):
        return base.parent
    return base


@contextlib.contextmanager
def exclusive(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on the file ``path`` (created), across processes:
    a worker that finds another building the same thing waits for it, then finds
    the result made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_with_cmake(dest: Path) -> Path:
    cfg = subprocess.run(
        [
            "cmake", "-S", str(REPO), "-B", str(dest), "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            "-DREFMALLOC_WERROR=ON",
        ],  # fmt: skip
        capture_output=True,
        text=True,
    )
    if cfg.returncode != 0:
        pytest.fail(f"cmake configure failed:\n{cfg.stdout}\n{cfg.stderr}")
    bld = subprocess.run(["cmake", "--build", str(dest), "-j2"], capture_output=True, text=True)
    if bld.returncode != 0:
        pytest.fail(f"cmake build failed:\n{bld.stdout}\n{bld.stderr}")
    lib = dest / "librefmalloc.so"
    if not lib.is_file():
        pytest.fail(f"cmake build produced no {lib}")
    return lib


@pytest.fixture(scope="session")
def lib(shared_tmp: Path) -> str:
    """Absolute path of librefmalloc.so under test."""
    env = os.environ.get("REFMALLOC_LIB")
    if env:
        path = Path(env)
        if not path.is_file():
            pytest.fail(f"REFMALLOC_LIB={env} does not exist")
        return str(path.resolve())
    try:
        import pyalloc  # type: ignore

        path = Path(pyalloc.lib_path())
        if path.is_file():
            return str(path.resolve())
    except Exception as exc:  # package not installed or no library yet
        print(f"pyalloc.lib_path() unavailable ({exc!r}); building with cmake", file=sys.stderr)
    # One build for every worker of the run: the first builds, the others wait for it.
    dest = shared_tmp / "cmake-build"
    with exclusive(shared_tmp / "cmake-build.lock"):
        lib = dest / "librefmalloc.so"
        if not lib.is_file():
            lib = _build_with_cmake(dest)
    return str(lib.resolve())


class Builder:
    """Compiles test programs, caching the result by a hash of the inputs."""

    def __init__(self, outdir: Path):
        self.outdir = outdir

    def __call__(self, source: str, extra_flags: tuple[str, ...] = (), tag: str = "") -> str:
        src = PROGRAMS / source
        if not src.is_file():
            raise FileNotFoundError(src)
        cxx = src.suffix in (".cpp", ".cc")
        compiler = "g++" if cxx else "gcc"
        std = "-std=gnu++17" if cxx else "-std=gnu11"
        flags = [
            std,
            "-O1",
            "-g",
            "-Wall",
            "-Wextra",
            "-fno-builtin",
            "-Wno-alloc-size-larger-than",
            "-Wno-maybe-uninitialized",
            "-Wno-use-after-free",
            "-pthread",
            f"-I{INCLUDE}",
            f"-I{PROGRAMS}",
            *extra_flags,
        ]
        h = hashlib.sha256()
        for f in (src, PROGRAMS / "common.h", INCLUDE / "refmalloc.h"):
            if f.is_file():
                h.update(f.read_bytes())
        h.update(" ".join([compiler, *flags]).encode())
        exe = self.outdir / f"{src.stem}{tag}-{h.hexdigest()[:16]}"
        if exe.exists():
            return str(exe)
        # The directory is shared by the workers of a parallel run: one compiles, a
        # worker wanting the same program waits, and the program appears whole (rename).
        with exclusive(exe.with_name(exe.name + ".lock")):
            if not exe.exists():
                tmp = exe.with_name(f"{exe.name}.tmp{os.getpid()}")
                cmd = [compiler, *flags, "-o", str(tmp), str(src), "-ldl"]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    pytest.fail(f"compiling {source} failed:\n{' '.join(cmd)}\n{res.stderr}")
                os.replace(tmp, exe)
        return str(exe)


@pytest.fixture(scope="session")
def build(shared_tmp: Path) -> Builder:
    outdir = shared_tmp / "programs"
    outdir.mkdir(exist_ok=True)
    return Builder(outdir)


@pytest.fixture(scope="session")
def run_prog(lib):
    """run_prog(exe, args, options=None, env=None, preload=True, timeout=60,
    after=(), cwd=None, input=None) -> CompletedProcess (text). ``after``: libraries preloaded after
    refmalloc (stacking). ``preload=False``: plain glibc, no refmalloc."""

    def run(
        exe,
        args=(),
        options=None,
        env=None,
        preload=True,
        timeout=60,
        after=(),
        cwd=None,
        input=None,
    ):
        e = clean_env(env)
        if preload:
            e["LD_PRELOAD"] = " ".join([lib, *after])
        if options is not None:
            e["REFMALLOC_OPTIONS"] = options
        try:
            return subprocess.run(
                [exe, *map(str, args)],
                env=e,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                cwd=cwd,
                input=input,
            )
        except subprocess.TimeoutExpired as exc:
            pytest.fail(
                f"{exe} {' '.join(map(str, args))} timed out after {timeout}s\n"
                f"stdout: {exc.stdout}\nstderr: {exc.stderr}"
            )

    return run


@pytest.fixture(scope="session")
def page_size() -> int:
    return os.sysconf("SC_PAGESIZE")
