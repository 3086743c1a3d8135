"""The host side of the rig: its errors, its cache, running host tools, and
the arm64 cross compiler (programs and the library itself)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CC = "aarch64-linux-gnu-gcc"
CXX = "aarch64-linux-gnu-g++"


class RigError(Exception):
    """The rig could not run the commands: a missing tool or package, a failed
    build, or a guest that did not print RIG-DONE (timeout, panic, RIG-ERROR).
    ``console`` holds the console text when there was a boot."""

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console



def progress(message: str) -> None:
    print(f"rig: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/refmalloc-rig, created."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "refmalloc-rig"
    path.mkdir(parents=True, exist_ok=True)
    return path


def need_tool(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise RigError(f"{tool} not found: apt-get install {package}")
    return found


def run_tool(cmd: Sequence[str], what: str, cwd: Path | None = None) -> str:
    try:
        cp = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise RigError(f"{what}: {e}") from e
    if cp.returncode != 0:
        raise RigError(
            f"{what} failed (exit {cp.returncode}): {' '.join(cmd)}\n{cp.stdout}{cp.stderr}"
        )
    return cp.stdout



def cross_compile(
    source: Path, out: Path, *, static: bool = False, extra_args: Sequence[str] = ()
) -> Path:
    """aarch64-linux-gnu-gcc -std=gnu11 -O2 SOURCE -o OUT [-static] EXTRA_ARGS
    (aarch64-linux-gnu-g++ -std=gnu++17 for .cc/.cpp/.cxx). Returns OUT."""
    cxx = Path(source).suffix in (".cc", ".cpp", ".cxx")
    if cxx:
        compiler = need_tool(CXX, "g++-aarch64-linux-gnu")
        std = "-std=gnu++17"
    else:
        compiler = need_tool(CC, "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
        std = "-std=gnu11"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, std, "-O2", str(source), "-o", str(out)]
    if static:
        cmd.append("-static")
    cmd.extend(extra_args)
    run_tool(cmd, f"cross-compiling {source}")
    return out


def build_library(build: Path) -> Path:
    """librefmalloc.so for arm64: the repository built with CMake and
    cmake/aarch64-linux-gnu.cmake into `build`. Returns the library."""
    toolchain = REPO / "cmake" / "aarch64-linux-gnu.cmake"
    need_tool(CC, "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    run_tool(
        ["cmake", "-S", str(REPO), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}",
         "-DREFMALLOC_WERROR=ON"],
        "cmake configure (arm64)",
    )
    run_tool(["cmake", "--build", str(build)], "cmake build (arm64)")
    return build / "librefmalloc.so"

