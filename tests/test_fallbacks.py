"""Contract: the fallbacks (eager anonymous memory + memset) are taken when
memfd_create is refused, when the mapping budget is reached, or when forced;
blocks still hold the pattern and the program keeps running."""

import re

from rmhelpers import assert_ok


def _stat(stdout, tag, name):
    m = re.search(rf"STATS {tag} .*\b{name}=(\d+)", stdout)
    assert m, stdout
    return int(m.group(1))


def test_memfd_refused_by_seccomp_falls_back_to_eager(build, run_prog):
    cp = assert_ok(run_prog(build("fallback.c"), ["seccomp"]))
    assert _stat(cp.stdout, "seccomp", "fallback_memfd") > 0


def test_memfd_refused_verbose_reports_fallback_once(build, run_prog):
    cp = assert_ok(run_prog(build("fallback.c"), ["seccomp"], options="verbose=1"))
    lines = [ln for ln in cp.stderr.splitlines() if ln.startswith("refmalloc")]
    assert lines, "verbose=1 printed nothing about the memfd fallback"
    assert any("memfd" in ln.lower() for ln in lines), cp.stderr
    # one line per fallback kind, not one per block (the program makes ~70 large blocks)
    assert len(lines) <= 5, cp.stderr


def test_mapping_budget_forced_low_falls_back_without_failure(build, run_prog):
    cp = assert_ok(run_prog(build("fallback.c"), ["budget"], options="max_mappings=50", timeout=90))
    assert _stat(cp.stdout, "budget", "fallback_budget") > 0
    assert _stat(cp.stdout, "budget", "mappings_in_use") <= 50


def test_refpages_disabled_every_large_block_eager_with_pattern(build, run_prog):
    cp = assert_ok(run_prog(build("fallback.c"), ["eager"], options="refpages=0"))
    assert _stat(cp.stdout, "eager", "refpage_allocs") == 0
    assert _stat(cp.stdout, "eager", "eager_allocs") > 0


def test_refpages_disabled_with_custom_pattern(build, run_prog):
    assert_ok(
        run_prog(
            build("fallback.c"),
            ["eager"],
            options="refpages=0,pattern=0x3e",
            env={"TEST_PATTERN": "0x3e"},
        )
    )


def test_reserved_range_too_small_falls_back_with_pattern(build, run_prog):
    cp = assert_ok(run_prog(build("fallback.c"), ["region"], options="reserve=1g"))
    assert _stat(cp.stdout, "region", "fallback_region") > 0


def test_more_live_large_blocks_than_vm_max_map_count_allows_never_fail(build, run_prog):
    """70000 live large blocks (threshold=4k) with the default budget: the
    budget must keep refmalloc's mappings well below vm.max_map_count
    (65530), so no malloc fails where glibc alone would succeed."""
    with open("/proc/sys/vm/max_map_count") as f:
        max_map_count = int(f.read())
    n = max(70000, max_map_count + 5000)
    exe = build("fallback.c")
    cp = assert_ok(
        run_prog(
            exe, ["many", n], options="threshold=4k", env={"TEST_THRESHOLD": 4096}, timeout=120
        )
    )
    assert "OK many" in cp.stdout
