"""Contract: C++ new/delete reach refmalloc through libstdc++."""

from rmhelpers import assert_ok


def test_cxx_new_delete_aligned_new_and_vector(build, run_prog):
    cp = assert_ok(run_prog(build("cxx.cpp"), []))
    assert "OK cxx vector=2000000" in cp.stdout


def test_cxx_with_custom_pattern(build, run_prog):
    assert_ok(run_prog(build("cxx.cpp"), [], options="pattern=0x01", env={"TEST_PATTERN": "1"}))
