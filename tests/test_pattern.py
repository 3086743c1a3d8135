"""Contract: every malloc-family block holds the pattern byte on every path
(fresh, reused, realloc's grown tail, aligned), calloc is zero."""

import pytest
from rmhelpers import assert_ok

# (id, REFMALLOC_OPTIONS, environment telling the program what to expect)
CONFIGS = [
    ("default", None, {}),
    ("pattern-0x5c", "pattern=0x5c", {"TEST_PATTERN": "0x5c"}),
    ("pattern-0", "pattern=0", {"TEST_PATTERN": "0"}),
    # eager blocks need not be cached: hits neither required nor forbidden
    ("refpages-0", "refpages=0", {"TEST_EXPECT_CACHE": "2"}),
    ("cache-0", "cache=0", {"TEST_EXPECT_CACHE": "0"}),
    ("threshold-64k", "threshold=64k", {"TEST_THRESHOLD": "65536"}),
]

MODES = {
    "sizes": "fresh blocks: every usable byte of sizes 1..64 KiB, around the threshold, "
    "1 MiB, 64 MiB, 256 MiB",
    "reuse-small": "small blocks written, freed and allocated again",
    "reuse-large": "large blocks written sparsely / fully, freed, allocated again (cache)",
    "calloc": "calloc zero (small, large, after dirty free); realloc'd calloc tail",
    "realloc": "realloc keeps content, patterns the grown tail on every path",
    "aligned": "posix_memalign/aligned_alloc/memalign/valloc/pvalloc 16 B..2 MiB",
    "reallocarray": "reallocarray fresh, grown, shrunk",
}


def _run(build, run_prog, mode, options, env):
    exe = build("pattern.c")
    return assert_ok(run_prog(exe, [mode], options=options, env=env, timeout=120))


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_fresh_blocks_hold_pattern_at_every_size(build, run_prog, cfg):
    cp = _run(build, run_prog, "sizes", cfg[1], cfg[2])
    assert "OK sizes" in cp.stdout


@pytest.mark.parametrize("mode", ["sizes", "reuse-small"])
def test_blocks_from_glibc_alone_hold_pattern_at_every_size(build, run_prog, mode):
    """Every size from glibc (threshold=1g), whose blocks of 128 KiB and more are
    mmapped chunks: the usable size refmalloc reads from glibc's chunk header
    (preload/next.h) has another formula for those."""
    env = {"TEST_THRESHOLD": str(1 << 30), "TEST_EXPECT_CACHE": "2"}
    cp = _run(build, run_prog, mode, "threshold=1g", env)
    assert f"OK {mode}" in cp.stdout


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_reused_small_blocks_hold_pattern_again(build, run_prog, cfg):
    cp = _run(build, run_prog, "reuse-small", cfg[1], cfg[2])
    # glibc's tcache hands the just-freed block back: the reuse path was exercised.
    assert "same_address=1" in cp.stdout, cp.stdout


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_reused_large_blocks_hold_pattern_again(build, run_prog, cfg):
    cp = _run(build, run_prog, "reuse-large", cfg[1], cfg[2])
    assert "OK reuse-large" in cp.stdout


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_calloc_is_zero_and_realloced_calloc_tail_is_pattern(build, run_prog, cfg):
    _run(build, run_prog, "calloc", cfg[1], cfg[2])


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_realloc_keeps_content_and_patterns_grown_tail(build, run_prog, cfg):
    cp = _run(build, run_prog, "realloc", cfg[1], cfg[2])
    assert "OK realloc" in cp.stdout


@pytest.mark.parametrize("cfg", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_aligned_families_are_aligned_pattern_filled_and_freeable(build, run_prog, cfg):
    _run(build, run_prog, "aligned", cfg[1], cfg[2])


@pytest.mark.parametrize("cfg", CONFIGS[:3], ids=[c[0] for c in CONFIGS[:3]])
def test_reallocarray_pattern_and_content(build, run_prog, cfg):
    _run(build, run_prog, "reallocarray", cfg[1], cfg[2])


def test_pattern_program_detects_missing_pattern(build, run_prog):
    """The checker itself can fail: expecting a pattern the library does not
    use must make the program fail (guards against a vacuous checker)."""
    exe = build("pattern.c")
    cp = run_prog(exe, ["sizes"], options="pattern=0x5c", env={"TEST_PATTERN": "0xaa"})
    assert cp.returncode == 1 and "FAIL" in cp.stderr, cp.stderr
    cp = run_prog(exe, ["sizes"], preload=False)
    assert cp.returncode == 1 and "not running under refmalloc" in cp.stderr, cp.stderr
