"""Issue 11, item 20: a seccomp allow-list sufficient for glibc's malloc.

tests/programs/sandbox.c installs a filter that kills the process at any
system call outside glibc's malloc's and its own, then allocates, reuses,
reallocates, frees, changes descriptors and forks. Under refmalloc it used
to die (SIGSYS) at the first large block after the filter: /proc/self/maps
and the pagemap read, a memfd made, getpid at fork."""

import pytest
from rmhelpers import assert_ok


@pytest.mark.parametrize("how", ["syscall", "prctl"])
def test_kill_by_default_filter_for_glibc_malloc_does_not_kill(build, run_prog, how):
    exe = build("sandbox.c")
    assert_ok(run_prog(exe, [how, "plain"], preload=False))  # the filter suits glibc
    cp = assert_ok(run_prog(exe, [how], options="verbose=1"))
    assert "OK sandbox" in cp.stdout
    assert "seccomp filter is being installed" in cp.stderr


def test_pattern_checked_under_the_filter_with_another_pattern(build, run_prog):
    exe = build("sandbox.c")
    cp = assert_ok(run_prog(exe, ["syscall"], options="pattern=0x5c,free_pattern=0x11",
                            env={"TEST_PATTERN": "0x5c"}))
    assert "OK sandbox" in cp.stdout
