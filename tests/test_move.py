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


def test_moves_never_leave_a_hole_for_the_programs_mappings(build, run_prog):
    """Issue 11, item 20: a realloc moved by mremap must not leave its old place
    unmapped, where another thread's mmap(NULL) lands and is then overwritten
    when refmalloc reserves the place again. tests/programs/holerace.c checks
    the stamps of its own mappings while another thread moves blocks; with a
    move that unmaps (MREMAP_DONTUNMAP taken out of os_move_fixed) they read
    0xaa or fault within a second."""
    cp = assert_ok(run_prog(build("holerace.c"), ["2"]))
    assert "OK holerace" in cp.stdout
