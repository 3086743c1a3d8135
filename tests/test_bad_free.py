"""Contract: a double free of a large block or a free of a pointer inside one
that is not its start aborts (SIGABRT) with a message that starts with
"refmalloc:" and names the address."""

import re
import signal

import pytest
from rmhelpers import describe


@pytest.mark.parametrize(
    "mode", ["double", "interior", "interior1", "cached-double", "realloc-double", "realloc-freed"]
)
def test_bad_free_of_large_block_aborts_with_refmalloc_message(build, run_prog, mode):
    cp = run_prog(build("badfree.c"), [mode])
    m = re.search(r"BADPTR (0x[0-9a-f]+)", cp.stdout)
    assert m, describe(cp)
    bad = int(m.group(1), 16)
    assert "STILL RUNNING" not in cp.stdout, describe(cp)
    assert cp.returncode == -signal.SIGABRT, describe(cp)
    lines = [ln for ln in cp.stderr.splitlines() if ln.startswith("refmalloc: ")]
    assert lines, describe(cp)
    addrs = {int(a, 16) for ln in lines for a in re.findall(r"0x[0-9a-fA-F]+", ln)}
    assert bad in addrs, f"address {bad:#x} not in refmalloc message\n{describe(cp)}"


def test_bad_free_message_with_cache_disabled(build, run_prog):
    cp = run_prog(build("badfree.c"), ["double"], options="cache=0")
    assert cp.returncode == -signal.SIGABRT, describe(cp)
    assert re.search(r"^refmalloc: .*0x[0-9a-f]+", cp.stderr, re.M), describe(cp)


def test_free_of_foreign_garbage_pointer_reaches_glibc_and_aborts(build, run_prog):
    """A pointer outside refmalloc's range goes to the next allocator: glibc
    aborts with its own message."""
    cp = run_prog(build("badfree.c"), ["garbage"])
    assert "BADPTR" in cp.stdout and "STILL RUNNING" not in cp.stdout, describe(cp)
    assert cp.returncode == -signal.SIGABRT, describe(cp)
    assert "free(): invalid pointer" in cp.stderr, describe(cp)
