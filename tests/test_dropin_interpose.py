"""Contract (drop-in, interposition layer): a program that works under glibc, or
under another allocator, works the same under refmalloc. Small reallocs keep
the pattern past the bytes owed a copy; free_pattern hides none of glibc's own
checks; __libc_* names route like the standard ones; mallinfo counts large
blocks; libc_malloc_debug stacked after refmalloc is used; an allocator
preloaded before refmalloc is detected and passed through."""

from __future__ import annotations

import os
import signal

import pytest
from rmhelpers import STACKED, assert_ok, describe

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


def _last_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else ""


def _same_end_as_glibc(build, run_prog, args, options, after=(), env=None):
    """Run under glibc alone (with `after` preloaded) and under refmalloc: the
    same signal, glibc's own message last, and the program never goes on past
    the bad call."""
    exe = build("dropin.c")
    plain_env = dict(env or {}, **({"LD_PRELOAD": " ".join(after)} if after else {}))
    plain = run_prog(exe, args, preload=False, env=plain_env)
    under = run_prog(exe, args, options=options, after=after, env=env)
    for cp in (plain, under):
        assert "BADPTR" in cp.stdout and "STILL RUNNING" not in cp.stdout, describe(cp)
    assert plain.returncode < 0, describe(plain)
    assert under.returncode == plain.returncode, f"{describe(plain)}\n{describe(under)}"
    assert _last_line(under.stderr) == _last_line(plain.stderr), describe(under)
    return plain


@pytest.mark.parametrize("options", ["free_pattern=0x22", None])
def test_small_double_free_is_caught_by_glibc_with_free_pattern(build, run_prog, options):
    """The free pattern must not overwrite tcache's key: glibc aborts with
    "free(): double free detected in tcache 2" as it does alone."""
    plain = _same_end_as_glibc(build, run_prog, ["double-free-small"], options)
    assert "double free detected in tcache 2" in plain.stderr
    assert plain.returncode == -signal.SIGABRT


@pytest.mark.parametrize("call", ["free-bad", "realloc-bad"])
@pytest.mark.parametrize("kind", ["interior1", "interior16", "misaligned", "garbage"])
@pytest.mark.parametrize("options", ["free_pattern=0x22", None])
def test_free_of_a_bad_small_pointer_ends_as_under_glibc(build, run_prog, call, kind, options):
    """free(p+1), free of a misaligned or garbage pointer: glibc's message and
    signal, not a SIGSEGV inside refmalloc asking for the usable size."""
    plain = _same_end_as_glibc(build, run_prog, [call, kind], options)
    assert "invalid pointer" in plain.stderr or "invalid size" in plain.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_libc_names_route_like_the_standard_ones(build, run_prog, backend):
    """__libc_malloc/__libc_free/__libc_realloc/... on small and large
    (>= 128 KiB) blocks, mixed with malloc/realloc/free: patterned, working."""
    cp = assert_ok(run_prog(build("dropin.c"), ["libc-large"], after=_after(backend)))
    assert "OK libc-large" in cp.stdout


MALLOC_DEBUG = "/usr/lib/x86_64-linux-gnu/libc_malloc_debug.so.0"


@pytest.mark.parametrize("mode", ["overflow1", "double-free-small"])
@pytest.mark.parametrize("options", ["free_pattern=0x22", None])
def test_malloc_check_with_libc_malloc_debug_after_refmalloc(build, run_prog, mode, options):
    """LD_PRELOAD="librefmalloc.so libc_malloc_debug.so.0" MALLOC_CHECK_=3: the
    debug library's malloc is used (its symbols are non-default versions a
    plain dlsym skips), so it catches what it catches alone: a one-byte
    overflow past the requested size, a small double free."""
    if not os.path.exists(MALLOC_DEBUG):
        pytest.fail(f"{MALLOC_DEBUG} not found (Debian's libc6 ships it)")
    plain = _same_end_as_glibc(
        build, run_prog, [mode], options, after=[MALLOC_DEBUG], env={"MALLOC_CHECK_": "3"}
    )
    assert plain.returncode == -signal.SIGABRT, describe(plain)
    assert "free(): invalid pointer" in plain.stderr, describe(plain)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mallinfo_counts_large_blocks(build, run_prog, backend):
    """After malloc(1 MiB) mallinfo2().hblkhd and uordblks grow by >= 1 MiB
    and hblks by one (mallinfo's int fields too); after free they drop."""
    cp = assert_ok(run_prog(build("dropin.c"), ["mallinfo"], after=_after(backend)))
    assert "OK mallinfo" in cp.stdout


def _before(lib: str, name: str) -> dict:
    """An environment preloading allocator `name` before refmalloc."""
    return {"LD_PRELOAD": f"{_after(name)[0]} {lib}"}


@pytest.mark.parametrize(
    "argv",
    [
        ["ls", "-la", "/usr/lib"],
        ["DROPIN", "calls"],
        ["/usr/bin/python3", "-c", "import json; print(len(json.dumps(list(range(99999)))))"],
    ],
    ids=["ls", "calls", "python"],
)
@pytest.mark.parametrize("name", sorted(STACKED))
def test_allocator_preloaded_before_refmalloc_is_passed_through(
    build, run_prog, lib, name, argv
):
    """LD_PRELOAD="libjemalloc.so.2 librefmalloc.so": refmalloc says so in one
    line naming the other library, then passes every call to it, so reallocarray,
    pvalloc, __libc_free... never hand that allocator's pointers to glibc."""
    argv = [build("dropin.c") if a == "DROPIN" else a for a in argv]
    cp = run_prog(argv[0], argv[1:], preload=False, env=_before(lib, name), timeout=120)
    assert cp.returncode == 0, describe(cp)
    lines = [ln for ln in cp.stderr.splitlines() if ln.startswith("refmalloc")]
    assert len(lines) == 1, describe(cp)
    assert _after(name)[0] in lines[0] and "LD_PRELOAD" in lines[0], lines[0]


@pytest.mark.parametrize("check", ["3", None])
@pytest.mark.parametrize("argv", [["ls", "-la", "/usr/lib"], ["DROPIN", "calls"]],
                         ids=["ls", "calls"])
def test_libc_malloc_debug_preloaded_before_refmalloc_is_passed_through(
    build, run_prog, lib, argv, check
):
    """LD_PRELOAD="libc_malloc_debug.so.0 librefmalloc.so": libc_malloc_debug's
    free calls __libc_free, which is refmalloc's; its free(p) went through the
    PLT back to libc_malloc_debug's free, endlessly (SIGSEGV at start-up
    without MALLOC_CHECK_). refmalloc's own calls now bind to itself."""
    if not os.path.exists(MALLOC_DEBUG):
        pytest.fail(f"{MALLOC_DEBUG} not found (Debian's libc6 ships it)")
    argv = [build("dropin.c") if a == "DROPIN" else a for a in argv]
    env = {"LD_PRELOAD": f"{MALLOC_DEBUG} {lib}"} | ({"MALLOC_CHECK_": check} if check else {})
    cp = run_prog(argv[0], argv[1:], preload=False, env=env, timeout=120)
    assert cp.returncode == 0, describe(cp)
    lines = [ln for ln in cp.stderr.splitlines() if ln.startswith("refmalloc")]
    assert len(lines) == 1 and MALLOC_DEBUG in lines[0], describe(cp)


@pytest.mark.parametrize("check", ["3", None])
@pytest.mark.parametrize("mode", ["calls", "libc-large"])
def test_libc_malloc_debug_after_refmalloc_works(build, run_prog, mode, check):
    """libc_malloc_debug.so forwards to glibc's __libc_malloc/__libc_free: the
    __libc_* names refmalloc exports must send its calls on to glibc, not back
    into the debug library's malloc (endless recursion, SIGSEGV)."""
    env = {"MALLOC_CHECK_": check} if check else None
    cp = run_prog(build("dropin.c"), [mode], after=[MALLOC_DEBUG], env=env)
    assert_ok(cp)
