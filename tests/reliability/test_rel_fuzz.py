"""Fuzzing (issue 6): random allocation sequences - sizes across the
threshold, alignments, realloc, reallocarray, calloc, free, free_sized,
writes - run by programs/fuzz.c against a shadow model, checking after every
step the pattern where nothing was written, content kept, alignment and the
usable size. Hypothesis generates (and shrinks) the sequences; the driver's
own random mode runs long sequences fast. CI: a bounded few seconds;
REFMALLOC_SOAK=1: minutes (more examples, more seeds, longer sequences)."""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rmhelpers import describe

SOAK = float(os.environ.get("REFMALLOC_SOAK") or 0)

CONFIGS = [
    # (REFMALLOC_OPTIONS without pattern, threshold)
    ("threshold=16k", 16384),
    ("threshold=4k,cache=0", 4096),
    ("threshold=64k", 65536),
    ("threshold=8k,max_mappings=30", 8192),
    ("threshold=16k,refpages=0", 16384),
    ("threshold=4k,free_pattern=0x11", 4096),
    ("threshold=4k,max_mappings=40", 4096),  # evictions while blocks grow
]


def _sizes(t):
    return st.one_of(
        st.integers(0, 64),
        st.integers(0, 4096),
        st.integers(t - 64, t + 64),
        st.integers(0, 8).map(lambda k: t + k * 4096 - 1),
        st.integers(t, 6 * t),
    )


def _ops(t):
    slot = st.integers(0, 7)  # few slots: operations meet the same blocks
    size = _sizes(t)
    return st.lists(
        st.one_of(
            st.tuples(st.just("m"), slot, size),
            st.tuples(st.just("c"), slot, st.integers(1, 4), size.map(lambda n: n // 4)),
            st.tuples(
                st.just("a"),
                slot,
                st.integers(0, 4),
                st.sampled_from([16, 32, 64, 256, 4096, 8192, 65536]),
                size,
            ),
            st.tuples(st.just("r"), slot, size),
            st.tuples(st.just("y"), slot, st.integers(1, 3), size.map(lambda n: n // 3)),
            st.tuples(
                st.just("w"),
                slot,
                st.integers(0, 6 * t),
                st.integers(0, 6 * t),
                st.integers(0, 999),
            ),
            st.tuples(st.sampled_from(["f", "z"]), slot),
            st.just(("v",)),
        ),
        max_size=60,
    )


@st.composite
def scenario(draw):
    opts, t = draw(st.sampled_from(CONFIGS))
    pattern = draw(st.integers(0, 255))
    ops = draw(_ops(t))
    return opts, t, pattern, ops


@settings(
    max_examples=int(150 * max(1, 40 * SOAK)),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=not SOAK,  # CI: the same examples every run
)
@given(scenario())
def test_random_sequences_hypothesis(rbuild, run_prog, sc):
    opts, t, pattern, ops = sc
    text = "\n".join(" ".join(map(str, op)) for op in ops) + "\n"
    cp = run_prog(
        rbuild("fuzz.c"),
        [],
        options=f"{opts},pattern={pattern}",
        env={"TEST_THRESHOLD": t, "TEST_PATTERN": pattern},
        input=text,
        timeout=60,
    )
    assert cp.returncode == 0, f"options {opts},pattern={pattern}\nops:\n{text}\n" + describe(cp)


@pytest.mark.parametrize("opts,t", CONFIGS, ids=[c[0] for c in CONFIGS])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sequences_driver(rbuild, run_prog, opts, t, seed):
    """50k generated operations per run (the driver's own generator)."""
    steps = 50_000
    cp = run_prog(
        rbuild("fuzz.c"),
        ["random", seed, steps],
        options=f"{opts},pattern=0x5c",
        env={"TEST_THRESHOLD": t, "TEST_PATTERN": "0x5c"},
        timeout=120,
    )
    assert cp.returncode == 0, f"options {opts} seed {seed}\n" + describe(cp)
    assert f"OK fuzz steps={steps}" in cp.stdout


def test_random_sequences_driver_mapping_budget_pressure(rbuild, run_prog):
    """Many seeds at a tiny budget (realloc of large blocks while the cache is
    evicted to make room): 8 x 100k operations."""
    failures = []
    for seed in range(11, 19):
        cp = run_prog(
            rbuild("fuzz.c"),
            ["random", seed, 100_000],
            options="threshold=4k,max_mappings=40",
            env={"TEST_THRESHOLD": 4096},
            timeout=120,
        )
        if cp.returncode != 0:
            failures.append(f"seed {seed}: exit {cp.returncode}: {cp.stderr.strip()[-300:]}")
    assert not failures, "\n".join(failures)


@pytest.mark.soak_only
def test_soak_random_sequences_driver(rbuild, run_prog):
    """Minutes: 1M operations for each of many seeds and every configuration."""
    seeds = int(os.environ.get("REFMALLOC_SOAK_SEEDS", "20"))
    failures = []
    for opts, t in CONFIGS:
        for seed in range(100, 100 + seeds):
            cp = run_prog(
                rbuild("fuzz.c"),
                ["random", seed, 1_000_000],
                options=opts,
                env={"TEST_THRESHOLD": t},
                timeout=600,
            )
            if cp.returncode != 0:
                failures.append(f"{opts} seed {seed}: exit {cp.returncode}: {cp.stderr[-300:]}")
    assert not failures, "\n".join(failures)
