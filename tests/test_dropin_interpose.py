"""Contract (drop-in, interposition layer): a program that works under glibc, or
under another allocator, works the same under refmalloc. Small reallocs keep
the pattern past the bytes owed a copy; free_pattern hides none of glibc's own
checks; __libc_* names route like the standard ones; mallinfo counts large
blocks; libc_malloc_debug stacked after refmalloc is used; an allocator
preloaded before refmalloc is detected and passed through."""

from __future__ import annotations

import os

import pytest
from rmhelpers import STACKED, assert_ok

BACKENDS = ["glibc", *sorted(STACKED)]


def _after(name: str) -> list[str]:
    """The libraries to preload after refmalloc for backend `name`."""
    if name == "glibc":
        return []
    path, pkg = STACKED[name]
    if not os.path.exists(path):
        pytest.fail(f"{path} not found: install the Debian package {pkg}")
    return [path]


@pytest.mark.parametrize("backend", BACKENDS)
def test_small_realloc_shrink_then_grow_shows_the_pattern(build, run_prog, backend):
    """40 -> 24 -> 40 (and many other pairs): the bytes past the shrunk size
    read as the pattern after the shrink and after the growth."""
    cp = assert_ok(run_prog(build("dropin.c"), ["realloc-shrink-grow"], after=_after(backend)))
    assert "OK realloc-shrink-grow" in cp.stdout
