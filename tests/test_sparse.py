"""Contract: large blocks built from reference pages cost no memory until
written and few mappings: 64 GiB of live sparse blocks."""

import re
import time

import pytest
from rmhelpers import assert_ok


# Serial: its verdict includes the time it took (30 s), which a busy machine decides.
@pytest.mark.serial
def test_64_gib_of_live_sparse_blocks(build, run_prog):
    t0 = time.monotonic()
    cp = assert_ok(run_prog(build("sparse.c"), [1000, 64], timeout=60))
    elapsed = time.monotonic() - t0
    m = re.search(r"STATS live .*mappings_in_use=(\d+)", cp.stdout)
    assert m and int(m.group(1)) <= 4096, cp.stdout
    assert "OK sparse" in cp.stdout
    assert elapsed < 30, f"64 GiB sparse test took {elapsed:.1f}s\n{cp.stdout}"
