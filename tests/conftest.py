"""Shared fixtures for the refmalloc test suite.

- ``lib``: path of librefmalloc.so (env REFMALLOC_LIB, else pyalloc.lib_path(),
  else a CMake build of the repository into a session temporary directory).
- ``build``: compiles tests/programs/*.c / *.cpp (cached by content hash).
- ``run_prog``: runs a program with LD_PRELOAD=lib and REFMALLOC_OPTIONS.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rmhelpers import INCLUDE, PROGRAMS, REPO, clean_env  # noqa: E402


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
def lib(tmp_path_factory) -> str:
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
    return str(_build_with_cmake(tmp_path_factory.mktemp("cmake-build")).resolve())


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
        if not exe.exists():
            tmp = exe.with_suffix(".tmp")
            cmd = [compiler, *flags, "-o", str(tmp), str(src), "-ldl"]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                pytest.fail(f"compiling {source} failed:\n{' '.join(cmd)}\n{res.stderr}")
            tmp.rename(exe)
        return str(exe)


@pytest.fixture(scope="session")
def build(tmp_path_factory) -> Builder:
    return Builder(tmp_path_factory.mktemp("programs"))


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
