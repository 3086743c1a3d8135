"""A reference-page block that grows past the mapping budget gets an eager
tail (a mixed block). Its reference-page bytes are counted by what was
mapped, not by its kind: freeing it brought live_refpage_bytes (and the
internal total that sizes the chunks) below zero before, wrapping to 2^64 - 5 MiB."""

import re

from rmhelpers import assert_ok


def test_mixed_block_reference_page_accounts_return_to_zero(build, run_prog):
    exe = build("mixedacct.c")
    seen_fallback = False
    for spent in range(6):
        cp = assert_ok(run_prog(exe, [str(spent)], options="max_mappings=16"))
        m = re.search(r"MIXED fallback=(\d+) live_after=(\d+) peak=(\d+)", cp.stdout)
        assert m, cp.stdout
        fallback, live, peak = map(int, m.groups())
        seen_fallback |= fallback > 0
        assert live == 0, f"{spent} blocks spent: live_refpage_bytes={live} after freeing all"
        assert peak < 1 << 40, f"{spent} blocks spent: peak_refpage_bytes={peak}"
    assert seen_fallback, "no run grew past the budget: the mixed block was never made"
