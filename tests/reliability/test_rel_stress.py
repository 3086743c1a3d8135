"""Stress under refmalloc (issue 6): 10^6 allocations with random frees,
realloc ping-pong across the threshold, fork while several threads allocate,
many processes at once each with its own memfd and pattern. The programs
check every fresh byte and every signature themselves (exit 1 + FAIL line).
The eight-thread churn itself is tests/test_threads_fork.py; its soak
version is here. REFMALLOC_SOAK=1 multiplies the sizes (minutes)."""

import os
import re
import subprocess

import pytest
from rmhelpers import STACKED, assert_ok, clean_env, describe


def test_million_allocations_with_random_frees(rbuild, run_prog, soak):
    n = int(1_000_000 * max(1, 20 * soak))
    cp = assert_ok(run_prog(rbuild("stress.c"), ["churn", n, 1], timeout=60 + 60 * soak * 20))
    m = re.search(r"OK churn allocs=(\d+) frees=(\d+) reallocs=(\d+) large=(\d+)", cp.stdout)
    assert m, cp.stdout
    allocs, frees, reallocs, large = map(int, m.groups())
    assert allocs == n and frees > n // 2 and reallocs > n // 10 and large > n // 100


def test_million_allocations_small_threshold_no_cache(rbuild, run_prog):
    """Most blocks large (threshold 16k), no cache: every large free unmaps."""
    cp = assert_ok(
        run_prog(
            rbuild("stress.c"),
            ["churn", 300_000, 2],
            options="threshold=16k,cache=0",
            env={"TEST_THRESHOLD": 16384},
            timeout=90,
        )
    )
    assert "OK churn" in cp.stdout


@pytest.mark.parametrize(
    "options,threshold",
    [(None, 131072), ("threshold=20k", 20480), ("threshold=64k,cache=0", 65536)],
)
def test_realloc_ping_pong_across_threshold(rbuild, run_prog, soak, options, threshold):
    rounds = int(300 * max(1, 30 * soak))
    cp = assert_ok(
        run_prog(
            rbuild("stress.c"),
            ["pingpong", rounds],
            options=options,
            env={"TEST_THRESHOLD": threshold},
            timeout=60 + 600 * soak,
        )
    )
    assert f"OK pingpong rounds={rounds}" in cp.stdout


def test_realloc_ping_pong_with_tiny_mapping_budget(rbuild, run_prog):
    """Same, with max_mappings=24: growth past the budget moves blocks to the
    next allocator and back; content and pattern must survive every move."""
    cp = assert_ok(
        run_prog(rbuild("stress.c"), ["pingpong", 200], options="max_mappings=24", timeout=60)
    )
    assert "OK pingpong" in cp.stdout


def test_fork_storm_while_threads_allocate(rbuild, run_prog, soak):
    """Four threads allocate across the threshold without pause while 30
    children are forked (half from a non-main thread); each child starts a
    thread, allocates, forks a grandchild. A deadlock is SIGALRM, not a hang."""
    k = int(30 * max(1, 10 * soak))
    cp = assert_ok(run_prog(rbuild("stress.c"), ["forkstorm", k, 4], timeout=120 + 60 * soak))
    assert f"OK forkstorm children={k} threads=4" in cp.stdout


def test_many_processes_at_once_each_with_its_own_memfd(rbuild, lib, soak):
    """24 processes at once (48 soaking), each with its own pattern: each
    sees only its pattern, holds its own sealed memfd (distinct inodes)."""
    exe = rbuild("stress.c")
    n = int(24 * max(1, 2 * soak))
    procs = []
    for i in range(n):
        pat = (0x11 + 7 * i) % 256
        env = clean_env(
            {
                "LD_PRELOAD": lib,
                "REFMALLOC_OPTIONS": f"pattern={pat}",
                "TEST_PATTERN": str(pat),
            }
        )
        procs.append(
            subprocess.Popen(
                [exe, "ownmemfd", "400"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    inodes = set()
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, f"process {i}: exit {p.returncode}\n{out}\n{err}"
        assert f"OK ownmemfd pattern=0x{(0x11 + 7 * i) % 256:02x}" in out, out
        mine = re.findall(r"MEMFD (\d+:\d+)", out)
        assert mine, out
        assert not inodes & set(mine), f"process {i} shares a memfd with another: {mine}"
        inodes.update(mine)
    assert len(inodes) >= n


@pytest.mark.soak_only
def test_soak_eight_threads_long(build, run_prog, soak):
    """tests/programs/threads.c for minutes: 8 threads, mixed sizes, 2
    thresholds."""
    ms = int(60_000 * soak)
    for opts, t in ((None, 131072), ("threshold=16k,cache=0", 16384)):
        cp = run_prog(
            build("threads.c"),
            [8, ms],
            options=opts,
            env={"TEST_THRESHOLD": t},
            timeout=ms / 1000 + 120,
        )
        assert cp.returncode == 0, describe(cp)
        print(cp.stdout.strip().splitlines()[-1])


@pytest.mark.soak_only
def test_soak_churn_many_seeds(rbuild, run_prog, soak):
    for seed in range(3, 3 + int(10 * soak)):
        for opts, t in ((None, 131072), ("threshold=8k,max_mappings=64", 8192)):
            cp = run_prog(
                rbuild("stress.c"),
                ["churn", 1_000_000, seed],
                options=opts,
                env={"TEST_THRESHOLD": t},
                timeout=300,
            )
            assert cp.returncode == 0, f"seed {seed} options {opts}\n" + describe(cp)


@pytest.mark.parametrize("name", sorted(STACKED))
def test_churn_and_fuzz_with_stacked_allocator(rbuild, run_prog, name):
    """The same churn and the fuzz driver with jemalloc / mimalloc / tcmalloc
    preloaded after refmalloc (they serve the small blocks and the fallbacks)."""
    path, package = STACKED[name]
    assert os.path.exists(path), f"{path} missing: apt-get install {package} (.ci/run does)"
    # Debian's mimalloc 2.0.9 alone (no refmalloc) returns memalign(512, 512)
    # blocks aligned to 128 after this history: its memalign is not churned
    env = {"TEST_NO_MEMALIGN": 1} if name == "mimalloc" else None
    cp = run_prog(
        rbuild("stress.c"), ["churn", 200_000, 5], after=(path,), env=env, timeout=120
    )
    assert cp.returncode == 0, describe(cp)
    for opts, t in (("threshold=16k", 16384), ("threshold=8k,max_mappings=40", 8192)):
        cp = run_prog(
            rbuild("fuzz.c"),
            ["random", 7, 30_000],
            options=opts,
            env={"TEST_THRESHOLD": t},
            after=(path,),
            timeout=120,
        )
        assert cp.returncode == 0, f"{name} {opts}\n" + describe(cp)
