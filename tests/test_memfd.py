"""Contract: the pattern memfd is sealed and close-on-exec; the library notices
when a program closes it or reuses its number, and never maps a foreign file."""

from rmhelpers import assert_ok


def test_memfd_is_sealed_and_cloexec(build, run_prog):
    cp = assert_ok(run_prog(build("memfd.c"), ["seals"]))
    assert "OK seals" in cp.stdout


def test_closefrom_with_live_blocks_then_more_large_blocks(build, run_prog):
    """close_range(3, ~0) with live large blocks: later large blocks hold the
    pattern, old ones stay readable and intact, memfd_recreated >= 1; a file
    full of 'Z' on the freed numbers is never mapped."""
    cp = assert_ok(run_prog(build("memfd.c"), ["closefrom"], timeout=60))
    assert "OK closefrom" in cp.stdout


def test_dup2_over_memfd_number_never_maps_foreign_file(build, run_prog):
    cp = assert_ok(run_prog(build("memfd.c"), ["dup2"], timeout=60))
    assert "OK dup2" in cp.stdout


def test_dup2_over_memfd_with_cache_disabled(build, run_prog):
    cp = assert_ok(run_prog(build("memfd.c"), ["dup2"], options="cache=0", timeout=60))
    assert "OK dup2" in cp.stdout
