"""The C unit tests of tests/unit/ (region.c, blocks.c, refpage chunk sizing),
built by CMake against allocator/ alone and run one by one. CI also builds
them with -DREFMALLOC_SANITIZE=ON (ASan, UBSan, RM_ASSERT) and runs them with
ctest (.ci/run). Cost: one CMake build of allocator/, about 15 s."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# One worker of a parallel run takes the module, so that the CMake build is made once.
pytestmark = pytest.mark.xdist_group("unit-c")

UNIT = sorted(p.stem for p in (REPO / "tests" / "unit").glob("test_*.c"))


@pytest.fixture(scope="module")
def unit_build(tmp_path_factory) -> Path:
    dest = tmp_path_factory.mktemp("unit-build")
    cfg = subprocess.run(
        [
            "cmake",
            "-S",
            str(REPO),
            "-B",
            str(dest),
            "-DCMAKE_BUILD_TYPE=RelWithDebInfo",
            "-DREFMALLOC_TESTS=ON",
        ],
        capture_output=True,
        text=True,
    )
    assert cfg.returncode == 0, f"cmake configure failed:\n{cfg.stdout}\n{cfg.stderr}"
    targets = [f"unit_{name}" for name in UNIT]
    bld = subprocess.run(
        ["cmake", "--build", str(dest), "-j2", "--target", *targets],
        capture_output=True,
        text=True,
    )
    assert bld.returncode == 0, f"cmake build failed:\n{bld.stdout}\n{bld.stderr}"
    return dest


def test_unit_tests_exist():
    assert {"test_region", "test_blocks", "test_refpage", "test_context"} <= set(UNIT)


@pytest.mark.parametrize("name", UNIT)
def test_unit(unit_build, name):
    proc = subprocess.run(
        [str(unit_build / f"unit_{name}")], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"{name} failed:\n{proc.stdout}\n{proc.stderr}"
    assert " 0 failed" in proc.stdout, proc.stdout
