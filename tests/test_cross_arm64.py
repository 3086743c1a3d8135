"""The arm64 cross build (cmake/aarch64-linux-gnu.cmake) produces a working
librefmalloc.so: the pattern contract programs pass under qemu's user-mode
emulation with the arm64 library preloaded."""

import shutil
import subprocess

import pytest
from rmhelpers import INCLUDE, PROGRAMS, assert_ok

import rig

# One worker of a parallel run takes the module, so that the arm64 build is made once.
pytestmark = pytest.mark.xdist_group("arm64")

SYSROOT = "/usr/aarch64-linux-gnu"
TOOLS = {
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu and libc6-dev-arm64-cross",
    "qemu-aarch64": "qemu-user",
}


@pytest.fixture(scope="module")
def arm64(tmp_path_factory):
    missing = [f"{tool} (apt-get install {pkg})" for tool, pkg in TOOLS.items()
               if not shutil.which(tool)]
    assert not missing, f"the arm64 cross build needs: {', '.join(missing)}"
    build = tmp_path_factory.mktemp("arm64")
    rig.build_library(build)
    rig.cross_compile(PROGRAMS / "pattern.c", build / "pattern",
                      extra_args=("-O1", "-fno-builtin", f"-I{INCLUDE}", f"-I{PROGRAMS}",
                                  "-ldl", "-pthread"))
    return build


def test_cross_built_library_is_arm64(arm64):
    header = subprocess.run(["readelf", "-h", str(arm64 / "librefmalloc.so")],
                            capture_output=True, text=True, check=True).stdout
    assert "AArch64" in header


@pytest.mark.parametrize("mode", ["reuse-small", "calloc", "realloc", "aligned"])
def test_pattern_contract_holds_on_arm64(arm64, mode):
    cp = subprocess.run(
        ["qemu-aarch64", "-L", SYSROOT, "-E", f"LD_PRELOAD={arm64 / 'librefmalloc.so'}",
         str(arm64 / "pattern"), mode],
        capture_output=True, text=True, timeout=300,
    )
    assert_ok(cp)
    assert f"OK {mode}" in cp.stdout
