"""Contract: errors as glibc 2.36 reports them. The program prints one line per
case made only of facts glibc defines (NULL or not, errno, return values,
alignment); it runs with and without refmalloc and the lines must be equal."""

import pytest
from rmhelpers import assert_ok, describe


@pytest.fixture(scope="module")
def outputs(build, run_prog):
    exe = build("errno.c")
    glibc = assert_ok(run_prog(exe, ["glibc"], preload=False))
    ref = assert_ok(run_prog(exe, ["refmalloc"]))
    g = [ln for ln in glibc.stdout.splitlines() if not ln.startswith("INFO")]
    r = [ln for ln in ref.stdout.splitlines() if not ln.startswith("INFO")]
    return g, r, ref


def _cases(lines, prefix):
    sel = [ln for ln in lines if ln.startswith(prefix)]
    assert sel, f"no case starting with {prefix!r}"
    return sel


@pytest.mark.parametrize(
    "prefix",
    [
        "malloc(",
        "calloc(",
        "reallocarray(",
        "realloc(NULL",
        "realloc(p",
        "posix_memalign(",
        "aligned_alloc(",
        "memalign(",
        "valloc(",
        "pvalloc(",
        "free(",
        "malloc_usable_size(NULL)",
    ],
)
def test_errors_match_glibc(outputs, prefix):
    g, r, _ = outputs
    assert _cases(r, prefix) == _cases(g, prefix)


def test_all_error_cases_match_glibc_line_by_line(outputs):
    g, r, ref = outputs
    assert r == g, describe(ref)
    assert r[-1] == "DONE"


def test_malloc_size_max_is_null_enomem(outputs):
    _, r, _ = outputs
    assert "malloc(SIZE_MAX): NULL errno=ENOMEM" in r
    assert "calloc(SIZE_MAX/2,3): NULL errno=ENOMEM" in r
    assert "reallocarray(NULL,SIZE_MAX/2,3): NULL errno=ENOMEM" in r


def test_posix_memalign_einval_leaves_errno(outputs):
    _, r, _ = outputs
    for al in (0, 3, 24, 4097):
        assert f"posix_memalign(al={al},100): ret=EINVAL errno=EDOM memptr=untouched" in r


def test_free_preserves_errno(outputs):
    _, r, _ = outputs
    assert [ln for ln in r if ln.startswith("free(")] == [
        f"free(block{i}): errno=ERANGE" for i in range(6)
    ]


def test_realloc_zero_frees_and_returns_null_like_glibc_236(outputs):
    _, r, _ = outputs
    for n in (100, 1048576, 67108864):
        assert f"realloc(p{n},0): NULL errno=EDOM" in r


def test_extra_entry_points_exported_and_working(outputs):
    """free_sized, free_aligned_sized, cfree exist under refmalloc and free
    large blocks (checked inside the program)."""
    _, _, ref = outputs
    assert "INFO extra entry points ok" in ref.stdout
