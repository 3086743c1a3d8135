"""Contract: small blocks go to the next allocator, also when jemalloc,
mimalloc or tcmalloc is preloaded after refmalloc, and still hold the pattern
over their whole usable size; frees and reallocs work across allocators."""

import os

import pytest
from rmhelpers import STACKED, assert_ok


def _stacked(name):
    path, pkg = STACKED[name]
    if not os.path.exists(path):
        pytest.fail(
            f"{path} not found: install the Debian package {pkg} "
            f"(apt-get install -y {pkg}); CI installs it"
        )
    return path


@pytest.mark.parametrize("name", sorted(STACKED))
def test_stacked_allocator_small_blocks_pattern_and_frees(build, run_prog, name):
    path = _stacked(name)
    cp = assert_ok(run_prog(build("stack.c"), [name, path], after=[path]))
    assert f"OK stacked {name}" in cp.stdout


@pytest.mark.parametrize("mode", ["sizes", "reuse-small", "calloc", "realloc", "aligned"])
@pytest.mark.parametrize("name", sorted(STACKED))
def test_stacked_allocator_pattern_program(build, run_prog, name, mode):
    path = _stacked(name)
    assert_ok(run_prog(build("pattern.c"), [mode], after=[path], timeout=120))


@pytest.mark.parametrize("name", sorted(STACKED))
def test_stacked_allocator_threads(build, run_prog, name):
    path = _stacked(name)
    assert_ok(run_prog(build("threads.c"), [4, 400], after=[path]))


@pytest.mark.parametrize("name", sorted(STACKED))
def test_stacked_allocator_cxx(build, run_prog, name):
    path = _stacked(name)
    assert_ok(run_prog(build("cxx.cpp"), [], after=[path]))
