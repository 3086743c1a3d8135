"""realloc moves large blocks without touching pages the program never wrote:
by the kernel's move of several mappings (mremap=1, Linux 6.17+) or, forced
with mremap=0 as on older kernels, by copying only the written pages."""

import pytest
from rmhelpers import assert_ok


@pytest.mark.parametrize("mremap", ["1", "0"])
def test_moved_blocks_keep_content_pattern_and_unwritten_pages(build, run_prog, mremap):
    cp = assert_ok(run_prog(build("move.c"), [], options=f"mremap={mremap}"))
    assert "OK move" in cp.stdout


@pytest.mark.parametrize("free_pattern", ["dd", "22"])
def test_large_block_read_after_free_sees_the_free_pattern(build, run_prog, free_pattern):
    cp = assert_ok(
        run_prog(build("uaf.c"), [free_pattern], options=f"free_pattern=0x{free_pattern}")
    )
    assert f"OK uaf {free_pattern}" in cp.stdout
