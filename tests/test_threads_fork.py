"""Contract: thread-safe and fork-safe; the pattern in every thread and after fork;
the memfd is close-on-exec."""

import re

from rmhelpers import assert_ok


def test_eight_threads_mixed_sizes_keep_pattern_and_content(build, run_prog):
    exe = build("threads.c")
    cp = assert_ok(run_prog(exe, [8, 1000], timeout=60))
    m = re.search(
        r"OK threads=8 ops=(\d+) large_requests=(\d+) reallocs=(\d+) large_allocs=(\d+)", cp.stdout
    )
    assert m, cp.stdout
    ops, larges, reallocs, large_allocs = map(int, m.groups())
    assert ops > 10000 and larges > 100 and reallocs > 1000 and large_allocs > 100, cp.stdout


def test_eight_threads_with_small_threshold_and_no_cache(build, run_prog):
    exe = build("threads.c")
    assert_ok(
        run_prog(
            exe,
            [8, 700],
            options="threshold=16k,cache=0",
            env={"TEST_THRESHOLD": 16384},
            timeout=60,
        )
    )


def test_fork_while_another_thread_allocates(build, run_prog):
    """Children of a parent holding large blocks (while a thread allocates)
    allocate, check the pattern and their inherited copies, free, exit 0; the
    parent's blocks are unchanged by what the children wrote."""
    exe = build("fork.c")
    cp = assert_ok(run_prog(exe, ["fork", 20], timeout=90))
    assert "OK fork children=20" in cp.stdout


def test_exec_after_fork_inherits_no_memfd(build, run_prog):
    """The memfd is MFD_CLOEXEC: a program exec'd by a child holds no memfd:
    descriptor (the parent is checked to hold one before)."""
    exe = build("fork.c")
    cp = assert_ok(run_prog(exe, ["exec"], timeout=60))
    assert "OK exec parent memfds=" in cp.stdout
    assert "OK no memfd after exec" in cp.stdout


def test_exec_of_system_program_inherits_no_memfd(build, run_prog):
    """Same through /bin/sh (which runs under refmalloc too): ls of the
    exec'd process's own fd directory shows no memfd."""
    cp = assert_ok(run_prog(build("spawn.c"), []))
    assert "LISTED" in cp.stdout
    # a memfd link reads "/memfd:NAME (deleted)"
    assert "memfd:" not in cp.stdout, cp.stdout


def test_fork_from_a_signal_handler_that_interrupted_fork(build, run_prog):
    """Issue 11 item 1 (glibc's tst-mallocfork2): an itimer's handler forks
    while main forks 3000 times. fork is async-signal-safe; a single-threaded
    process holds no refmalloc lock across fork (hung before the fix)."""
    cp = assert_ok(run_prog(build("forkdeadlock.c"), ["signal", 3000], timeout=60))
    assert "OK signal forks=3000" in cp.stdout


def test_fork_against_stdio_locks_does_not_deadlock(build, run_prog):
    """Issue 11 item 2 (glibc's tst-malloc-fork-deadlock, bug 19431): 4 threads
    fork, 8 threads getline() a 1 MiB line (large reallocs), one runs
    fflush(NULL). refmalloc's locks are taken after the stdio list lock, as
    glibc's are (hung before the fix)."""
    cp = assert_ok(run_prog(build("forkdeadlock.c"), ["stdio", 3], timeout=60))
    assert "OK stdio seconds=3" in cp.stdout
