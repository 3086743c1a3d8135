"""Faults forced in the middle of a run (issue 6): memfd_create refused by
seccomp after blocks exist, the mapping budget exhausted with live blocks,
RLIMIT_AS (mid-run and from the start), the memfd closed or replaced by
dup2 repeatedly, an unwritable report path, malformed REFMALLOC_OPTIONS.
Each asserts: the program keeps running (its own exit status), nothing it
wrote is lost (the programs check every byte), and a clear refmalloc message
says what happened. The plain fallbacks (filter before the first block,
one dup2, close_range) are tests/test_fallbacks.py and tests/test_memfd.py."""

import resource

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rmhelpers import assert_ok, describe, refmalloc_lines


def test_memfd_create_refused_mid_run_keeps_every_block(rbuild, run_prog):
    cp = assert_ok(run_prog(rbuild("faults.c"), ["seccomp-midrun"], options="verbose=1"))
    assert "OK seccomp-midrun" in cp.stdout
    msgs = refmalloc_lines(cp.stderr)
    assert any("memfd" in m and ("closed" in m or "replaced" in m) for m in msgs), cp.stderr
    assert any("memfd" in m and "eager" in m for m in msgs), cp.stderr
    assert len(msgs) <= 6, cp.stderr


@pytest.mark.parametrize("budget", [20, 60, 300])
def test_mapping_budget_exhausted_mid_run(rbuild, run_prog, budget):
    cp = assert_ok(
        run_prog(
            rbuild("faults.c"),
            ["budget-midrun"],
            options=f"max_mappings={budget},verbose=1",
            timeout=120,
        )
    )
    assert "OK budget-midrun" in cp.stdout
    assert f"budget={budget} reached" in cp.stdout
    msgs = refmalloc_lines(cp.stderr)
    assert any("budget" in m for m in msgs), cp.stderr
    assert len(msgs) <= 6, cp.stderr


def test_mapping_budget_exhausted_mid_run_small_threshold(rbuild, run_prog):
    cp = assert_ok(
        run_prog(
            rbuild("faults.c"),
            ["budget-midrun"],
            options="max_mappings=40,threshold=8k,cache=0",
            env={"TEST_THRESHOLD": 8192},
            timeout=120,
        )
    )
    assert "OK budget-midrun" in cp.stdout


@pytest.mark.parametrize("options", ["", "cache=0", "threshold=16k"])
def test_memfd_replaced_and_closed_repeatedly_with_live_blocks(rbuild, run_prog, options):
    t = {"threshold=16k": 16384}.get(options, 131072)
    cp = assert_ok(
        run_prog(
            rbuild("faults.c"),
            ["memfd-swap"],
            options=",".join(x for x in (options, "verbose=1") if x),
            env={"TEST_THRESHOLD": t},
            timeout=120,
        )
    )
    assert "OK memfd-swap" in cp.stdout
    assert any("memfd" in m for m in refmalloc_lines(cp.stderr)), cp.stderr


def _limit_as(nbytes):
    def set_limit():
        resource.setrlimit(resource.RLIMIT_AS, (nbytes, nbytes))

    return set_limit


def test_rlimit_as_lowered_mid_run_null_enomem_no_crash(rbuild, run_prog):
    """The program lowers RLIMIT_AS to VmSize + 48 MiB, then allocates until
    small requests fail: NULL with ENOMEM, no crash, every held block intact,
    freed memory allocatable again, a failed realloc keeps its block."""
    cp = assert_ok(run_prog(rbuild("faults.c"), ["rlimit-live"], timeout=120))
    assert "OK rlimit-live" in cp.stdout


@pytest.mark.parametrize("limit_mib,need_mib", [(1400, 400), (2400, 400), (4300, 400)])
def test_program_that_fits_rlimit_as_plainly_fits_under_refmalloc(
    rbuild, run_cmd, limit_mib, need_mib
):
    """Under `ulimit -v` a program needing ~need_mib MiB of small blocks (and a
    few 16 MiB blocks) runs plainly; it must run under refmalloc too: the
    reserved address range must not take the program's address space."""
    exe = rbuild("faults.c")
    lim = _limit_as(limit_mib << 20)
    plain = run_cmd([exe, "rlimit-work", need_mib], preload=False, preexec_fn=lim)
    assert plain.returncode == 0, "control run without refmalloc failed\n" + describe(plain)
    ref = run_cmd([exe, "rlimit-work", need_mib], preexec_fn=lim)
    assert ref.returncode == 0, describe(ref)


def test_python_under_ulimit_v_same_as_plain(run_cmd):
    """The same for CPython (PYTHONMALLOC=malloc) with threads under
    ulimit -v 2200 MiB, needing ~300 MiB."""
    import sys

    code = (
        "import threading\n"
        "buf=bytearray(1<<20)\n"
        "x=[bytes(100000) for _ in range(3000)]\n"
        "t=[threading.Thread(target=lambda: sum(range(100000))) for _ in range(4)]\n"
        "[a.start() for a in t]; [a.join() for a in t]; print('ok', len(x))\n"
    )
    lim = _limit_as(2200 << 20)
    env = {"PYTHONMALLOC": "malloc"}
    plain = run_cmd([sys.executable, "-c", code], preload=False, env=env, preexec_fn=lim)
    assert plain.returncode == 0, describe(plain)
    ref = run_cmd([sys.executable, "-c", code], env=env, preexec_fn=lim)
    assert ref.returncode == 0 and ref.stdout == plain.stdout, describe(ref)


@pytest.mark.parametrize(
    "kind", ["missing-dir", "proc", "not-a-dir", "readonly-fs", "too-long", "dir-itself"]
)
def test_report_path_unwritable_program_unaffected(rbuild, run_cmd, tmp_path, kind):
    """The report cannot be written: the program's output and exit status are
    its own, one clear refmalloc line names the path."""
    (tmp_path / "file").write_text("x")
    path = {
        "missing-dir": tmp_path / "no" / "such" / "dir" / "r.json",
        "proc": "/proc/self/refmalloc-report.json",
        "not-a-dir": tmp_path / "file" / "r.json",
        "readonly-fs": "/sys/refmalloc-report.json",
        "too-long": tmp_path / ("x" * 300 + ".json"),
        "dir-itself": tmp_path,
    }[kind]
    exe = rbuild("faults.c")
    plain = run_cmd([exe, "work"], preload=False)
    assert plain.returncode == 3 and plain.stdout.startswith("checksum"), describe(plain)
    cp = run_cmd([exe, "work"], options=f"report={path}")
    assert cp.returncode == 3, describe(cp)
    assert cp.stdout == plain.stdout
    msgs = refmalloc_lines(cp.stderr)
    assert len(msgs) == 1, describe(cp)
    assert "report" in msgs[0] and str(path)[:60] in msgs[0], msgs
    assert cp.stderr.strip() == msgs[0], describe(cp)


def test_report_path_unwritable_under_cli(cli, run_cmd, rbuild, lib, tmp_path):
    """Same through `refmalloc run --report` (the CLI checks the directory:
    a usage error before the program starts is also clear)."""
    exe = rbuild("faults.c")
    cp = run_cmd(
        [*cli, "run", "--report", "/proc/self/x.json", "--", exe, "work"],
        preload=False,
        env={"REFMALLOC_LIB": lib},
    )
    if cp.returncode == 3:
        assert cp.stdout.startswith("checksum"), describe(cp)
        assert any("report" in m for m in refmalloc_lines(cp.stderr)), describe(cp)
    else:
        assert cp.returncode == 2 and "report" in cp.stderr.lower(), describe(cp)


MALFORMED = [
    "",
    ",,,",
    "=",
    "=1",
    "pattern",
    "pattern=",
    "pattern==1",
    "pattern=0x",
    "pattern=0xaa0",
    "pattern= 1",
    "threshold=1x",
    "threshold=-1",
    "threshold=99999999999999999999999t",
    "threshold=18446744073709551616",
    "cache=-5",
    "max_mappings=1e9",
    "reserve=0",
    "max_chunk=0",
    "verbose=7",
    "report=",
    "PATTERN=1",
    " pattern=1",
    "pattern=1,,threshold=",
    "pattern=\xff\xfe",
    "x" * 5000,
    "pattern=" + "1" * 5000,
    "a=b=c=d",
    ",pattern=0x55,",
]


@pytest.mark.parametrize("opts", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_options_program_keeps_running(rbuild, run_cmd, opts):
    """Each malformed REFMALLOC_OPTIONS: the program runs to its own end with
    the same output; every stderr line is refmalloc's, short, about the
    options, and there are few of them."""
    exe = rbuild("faults.c")
    plain = run_cmd([exe, "work"], preload=False)
    pat = {",pattern=0x55,": "0x55", "pattern=1,,threshold=": "1"}.get(opts, "0xaa")
    cp = run_cmd([exe, "work"], options=opts, env={"TEST_PATTERN": pat})
    assert cp.returncode == 3, describe(cp)
    assert cp.stdout == plain.stdout
    lines = cp.stderr.splitlines()
    assert len(lines) <= 8, describe(cp)
    for ln in lines:
        assert ln.startswith("refmalloc: REFMALLOC_OPTIONS"), describe(cp)
        assert len(ln) < 400, "message not bounded: " + ln[:200]


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(
                [
                    "pattern",
                    "free_pattern",
                    "threshold",
                    "cache",
                    "verbose",
                    "max_mappings",
                    "refpages",
                    "max_chunk",
                    "bogus",
                ]
            ),
            st.text(alphabet="0123456789xkmgtaf-+=, ", max_size=12),
        ),
        max_size=5,
    )
)
def test_random_option_strings_never_break_the_program(rbuild, run_cmd, pairs):
    exe = rbuild("faults.c")
    opts = ",".join(f"{k}={v}" for k, v in pairs)
    # whatever the pattern became, fresh blocks are uniform (TEST_PATTERN=any)
    # and the checksum workload's output does not depend on it
    cp = run_cmd([exe, "work"], options=opts, env={"TEST_PATTERN": "any"}, timeout=60)
    assert cp.returncode == 3 and cp.stdout == _work_output(run_cmd, exe), describe(cp)
    for ln in cp.stderr.splitlines():
        assert ln.startswith("refmalloc: "), describe(cp)


_WORK = {}


def _work_output(run_cmd, exe):
    if exe not in _WORK:
        _WORK[exe] = run_cmd([exe, "work"], preload=False).stdout
    return _WORK[exe]
