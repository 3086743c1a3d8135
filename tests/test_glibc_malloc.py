"""glibc 2.36's own malloc tests under refmalloc (issue 11, "drop-in robustness").

Each test of tests/glibc/runner.py's table runs once under plain glibc and once
under each refmalloc configuration (default pattern 0xaa, pattern=0x5c,
threshold=4k); under refmalloc it must end as it does under glibc (pass, or
unsupported where glibc's own run is). The sources come from Debian's
glibc-source package, extracted and built at test time; the 1.5x time criterion
is `python tests/glibc/runner.py --ratios`, a benchmark, not asserted here.

All the runs a session selects are made up front, two at a time, by one
session fixture; each test then reads its own result.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location(
    "glibc_runner", Path(__file__).resolve().parent / "glibc" / "runner.py"
)
assert _SPEC and _SPEC.loader
runner = importlib.util.module_from_spec(_SPEC)
sys.modules["glibc_runner"] = runner
_SPEC.loader.exec_module(runner)

# The whole module runs in scripts/test.sh's serial part, on a machine nothing else of the
# suite loads: the matrix runs two tests at a time itself, and glibc's fork tests
# (tst-mallocfork2/3) then need about a third of their 60 s limit; beside two busy
# workers they reached it (seen: 4 timeouts under a load of 10).
pytestmark = pytest.mark.serial

TEST_NAMES = [t.name for t in runner.TESTS]
TIMEOUT = float(os.environ.get("REFMALLOC_GLIBC_TIMEOUT", runner.DEFAULT_TIMEOUT))
JOBS = max(1, min(4, os.cpu_count() or 2))
# Long runs first, so that two workers finish together.
LONG_FIRST = ("tst-mallocfork3", "tst-mallocfork2", "tst-malloc-too-large")


@pytest.fixture(scope="session")
def glibc_builder() -> runner.Builder:
    cache = Path(os.environ.get("REFMALLOC_GLIBC_CACHE", str(runner.DEFAULT_CACHE)))
    builder = runner.Builder(cache)
    try:
        builder.extract(runner.TESTS)
    except runner.RunnerError as exc:
        pytest.fail(str(exc))
    return builder


@pytest.fixture(scope="session")
def glibc_results(request, lib, glibc_builder) -> dict[tuple[str, str], runner.Cell]:
    """The cells every selected test of this module needs, run at once."""
    wanted: set[tuple[str, str]] = set()
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module.__name__ != __name__ or "test" not in params:
            continue
        wanted.add((params["test"], "glibc"))
        if "config" in params:
            wanted.add((params["test"], params["config"]))
    names = sorted({t for t, _ in wanted}, key=lambda n: (n not in LONG_FIRST, n))
    tests = [runner.TEST_BY_NAME[n] for n in names]
    try:
        exes = glibc_builder.build_all(tests, jobs=JOBS)
    except runner.RunnerError as exc:
        pytest.fail(str(exc))
    items = [
        (runner.TEST_BY_NAME[t], runner.CONFIG_BY_NAME[c])
        for t in names
        for c in [c.name for c in runner.CONFIGS]
        if (t, c) in wanted
    ]
    return runner.run_items(
        items, exes, Path(lib), jobs=JOBS, timeout=TIMEOUT, limits=glibc_builder.limits
    )


@pytest.mark.parametrize("test", TEST_NAMES)
def test_glibc_baseline(glibc_results, test):
    """Under plain glibc the test passes (or says unsupported) through the
    shim: otherwise the shim or the test's set-up is broken, and the
    refmalloc comparisons below mean nothing."""
    cell = glibc_results[(test, "glibc")]
    assert cell.verdict in ("pass", "unsupported"), runner.describe(cell.shown())


@pytest.mark.parametrize("config", runner.REFMALLOC_CONFIGS)
@pytest.mark.parametrize("test", TEST_NAMES)
def test_glibc_malloc_test_under_refmalloc(glibc_results, test, config):
    """The test ends under refmalloc as it does under glibc."""
    want = glibc_results[(test, "glibc")].verdict
    cell = glibc_results[(test, config)]
    assert cell.verdict == want, f"glibc: {want}\n" + runner.describe(cell.shown())


# The shim's own behaviour: (MODE, exit status, output that must appear).
SHIM_MODES = [
    (0, 0, None),
    (1, 1, r"not true: 0 == 1"),
    (2, 1, r"value of -1 != value of 0xffffffffu"),
    (3, 1, r"error: 1 test failures"),
    (4, 77, r"mode 4"),
    (5, 1, r"mode 5"),
    (6, 1, r"Timed out: killed the child process"),
    (7, 0, None),
    (8, 1, r"Expected signal 'Aborted' from child"),
    (9, 1, r"Didn't expect signal from child: got `Segmentation fault'"),
]


@pytest.mark.parametrize(("mode", "status", "output"), SHIM_MODES)
def test_support_shim_maps_results(glibc_builder, mode, status, output):
    """The driver turns each kind of test result into glibc's exit status
    (0 pass, 1 fail, 77 unsupported), so a failing glibc test cannot pass."""
    exe = glibc_builder.build_file(runner.HERE / "selftest" / "driver_modes.c", [f"MODE={mode}"])
    test = runner.GlibcTest(f"driver-mode-{mode}")
    r = runner.run_one(test, exe, runner.CONFIG_BY_NAME["glibc"], None, timeout=30)
    assert not r.timed_out and r.status == status, runner.describe(r)
    if output:
        assert re.search(re.escape(output), r.output), runner.describe(r)


def test_support_shim_timeout_kills_the_process_group(glibc_builder, tmp_path):
    """At TIMEOUT the driver kills the test and what it forked, on its own
    (run here without the runner, which would kill them anyway)."""
    exe = glibc_builder.build_file(runner.HERE / "selftest" / "driver_modes.c", ["MODE=6"])
    out = tmp_path / "out"
    with open(out, "wb") as f:
        rc = subprocess.run([str(exe)], stdout=f, stderr=subprocess.STDOUT, timeout=30).returncode
    text = out.read_text()
    helper = int(re.search(r"helper (\d+)", text).group(1))
    deadline = time.monotonic() + 5
    while Path(f"/proc/{helper}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = Path(f"/proc/{helper}").exists()
    if alive:
        os.kill(helper, signal.SIGKILL)
    assert rc == 1 and "Timed out" in text, text
    assert not alive, f"helper {helper} survived the timeout"


def test_support_shim_legacy_skeleton(glibc_builder):
    """A test written for the old "../test-skeleton.c" entry runs its
    TEST_FUNCTION expression and exits with its value."""
    exe = glibc_builder.build_file(runner.HERE / "selftest" / "legacy_skeleton.c")
    r = runner.run_one(
        runner.GlibcTest("legacy"), exe, runner.CONFIG_BY_NAME["glibc"], None, timeout=30
    )
    assert r.status == 77 and "legacy skeleton ran" in r.output, runner.describe(r)
