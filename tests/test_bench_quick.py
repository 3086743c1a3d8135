"""Smoke test of the benchmark suite (python -m bench), so it cannot rot:
two tiny workloads, one repetition, glibc against refmalloc (and refmalloc
stacked over jemalloc when jemalloc is installed; its absence must be reported,
not hidden). Checks the JSON's structure and that refmalloc was really loaded.
Then the threshold sweep (python -m bench --sweep --quick): every size and mode
measured, and each swept block on the path its configuration names.
The full suite is not run in CI. Cost: a few seconds each."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench_env(lib: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "REFMALLOC_OPTIONS")}
    env["REFMALLOC_LIB"] = lib
    return env


def test_bench_quick_smoke(lib, tmp_path):
    out = tmp_path / "out"
    env = bench_env(lib)
    cmd = [
        sys.executable,
        "-m",
        "bench",
        "--quick",
        "--reps",
        "1",
        "--workloads",
        "large-1pct-1m,churn-2k-t1",
        "--configs",
        "glibc,refmalloc,refmalloc+jemalloc",
        "--no-plots",
        "--no-progress",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    data = json.loads((out / "results.json").read_text())
    assert {"meta", "summary", "targets", "probes", "measurements", "skipped"} <= set(data)
    assert data["meta"]["lib"] == lib
    assert set(data["summary"]) == {"large-1pct-1m", "churn-2k-t1"}

    configs = {"glibc", "refmalloc"}
    if "refmalloc+jemalloc" in data["skipped"]:
        # A missing peer is skipped with a message, never silently.
        assert "skipping configuration refmalloc+jemalloc" in proc.stderr
    else:
        configs.add("refmalloc+jemalloc")
    for workload, row in data["summary"].items():
        assert set(row) == configs, workload
        for cfg, cell in row.items():
            assert cell["n"] == 1 and not cell["errors"], (workload, cfg, cell)
            assert cell["median"]["time"] > 0
            assert cell["median"]["peak_anon"] > 0
            assert cell["ratio_to_glibc"]["time"] > 0
        assert row["glibc"]["ratio_to_glibc"]["time"] == 1.0

    # refmalloc really ran: mapped into the process, its API answered, and
    # its large blocks were reference pages reading the pattern.
    for m in data["measurements"]:
        assert m["error"] is None, m
        if m["config"].startswith("refmalloc"):
            assert "librefmalloc" in m["libs"], m
            assert "rm_stats" in m["extra"], m
        else:
            assert m["libs"] == [] and "rm_stats" not in m["extra"], m
        if m["workload"] == "large-1pct-1m":
            expected = 0xAA if m["config"].startswith("refmalloc") else 0
            assert m["extra"]["unwritten_byte"] == expected, m
            if m["config"].startswith("refmalloc"):
                assert m["extra"]["rm_stats"]["refpage_allocs"] >= m["extra"]["count"], m
    assert data["probes"]["refmalloc"]["large_fresh"] == 0xAA
    assert data["probes"]["refmalloc"]["small_fresh"] == 0xAA
    assert {t["workload"] for t in data["targets"]} == {"large-1pct-1m", "churn-2k-t1"}
    table = (out / "table.md").read_text()
    assert "ratio to glibc" in table and "large-1pct-1m" in table

    # --compare: the ratios of an earlier run beside this one's. An earlier run whose
    # refmalloc took twice as long (relative to its glibc) shows as ×0.50 now.
    earlier = json.loads((out / "results.json").read_text())
    cell = earlier["summary"]["large-1pct-1m"]["refmalloc"]["ratio_to_glibc"]
    now = cell["time"]
    cell["time"] = 2 * now
    (tmp_path / "earlier.json").write_text(json.dumps(earlier))
    again = out / "again"
    replay = [
        sys.executable, "-m", "bench", "--from-json", str(out / "results.json"),
        "--compare", str(tmp_path / "earlier.json"), "--no-plots", "--out", str(again),
    ]  # fmt: skip
    proc = subprocess.run(replay, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    compared = (again / "compare.md").read_text()
    row = next(line for line in compared.splitlines() if line.startswith("| large-1pct-1m "))
    assert f"{2 * now:.2f} → {now:.2f} (×0.50)" in row, compared
    assert "### peak PSS" in compared and "### Targets (before → now)" in compared


def test_bench_compare_refuses_what_is_not_a_result_before_measuring(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a result"}')
    for path, why in ((bad, "not a results.json"), (tmp_path / "absent.json", "cannot read")):
        proc = subprocess.run(
            [sys.executable, "-m", "bench", "--quick", "--compare", str(path)],
            cwd=REPO, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert proc.returncode == 2 and why in proc.stderr, proc.stderr
        assert "results in" not in proc.stderr


def test_bench_sweep_quick(lib, tmp_path):
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "bench", "--sweep", "--quick", "--no-progress",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, env=bench_env(lib), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    data = json.loads((out / "sweep.json").read_text())
    assert data["meta"]["lib"] == lib and data["meta"]["quick"]
    sizes = [16 << 10, 64 << 10, 256 << 10, 1 << 20]
    assert set(data["summary"]) == {"reuse", "live"} == set(data["crossover"])
    for mode, rows in data["summary"].items():
        assert [r["size"] for r in rows] == sizes, mode
        for r in rows:
            assert set(r["time_ns"]) == {"glibc", "small", "refpage"}, (mode, r)
            assert all(t and t > 0 for t in r["time_ns"].values()), (mode, r)
            assert r["refpage_over_small"] > 0, (mode, r)
        cross = data["crossover"][mode]
        assert cross is None or cross in sizes

    # Each run under the configuration it names: the swept blocks from reference
    # pages under threshold=<size>, none large under threshold=1g, no refmalloc
    # in the glibc runs; a never-written page of a refpage block reads the pattern.
    assert len(data["measurements"]) == 2 * len(sizes) * 3
    for m in data["measurements"]:
        assert m["error"] is None, m
        stats = m["extra"].get("rm_stats")
        if m["config"] == "glibc":
            assert m["libs"] == [] and stats is None, m
            continue
        assert "librefmalloc" in m["libs"], m
        assert m["extra"]["unwritten_byte"] == 0xAA, m
        large = stats["refpage_allocs"]  # blocks reused from the cache included
        if m["config"] == "refpage":
            assert large >= m["extra"]["iterations"] and stats["eager_allocs"] == 0, m
        else:
            assert large == 0 and stats["eager_allocs"] == 0, m
    table = (out / "sweep.md").read_text()
    assert "Crossover (reuse)" in table and "Crossover (live)" in table


def test_bench_check_group_quick(lib, tmp_path):
    """--workloads check: one row per program (read corpus, sqlite3, numpy), each with
    the plain run, refmalloc run, check, check --no-reads and memcheck (or a reason it
    was skipped), and check's verdict as the corpus expects. No timing is asserted."""
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "bench", "--quick", "--workloads", "check", "--no-plots",
        "--no-progress", "--cache-dir", str(tmp_path / "cache"), "--out", str(out),
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, cwd=REPO, env=bench_env(lib), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    data = json.loads((out / "results.json").read_text())
    corpus = REPO / "tests" / "check_corpus"
    programs = sorted(p.stem for p in corpus.glob("reads_*")) + sorted(
        p.stem for p in corpus.glob("clean_reads_*")
    )
    expected_rows = {f"check-{p}" for p in programs} | {
        "check-clean_numpy",
        "check-sqlite3",
        "check-numpy",
    }
    rows = {r["workload"]: r for r in data["check"]}
    assert set(rows) == expected_rows == set(data["summary"])
    modes = ("glibc", "rm-run", "check", "check-noreads", "memcheck")
    for name, row in rows.items():
        cells = data["summary"][name]
        for mode in modes:
            if f"{name}/{mode}" in data["skipped"]:
                continue  # said why (valgrind, numpy or sqlite3 missing)
            assert cells[mode]["n"] == 1 and not cells[mode]["errors"], (name, mode, cells)
            assert cells[mode]["ratio_to_glibc"]["time"] > 0
        if row["expect"] is not None:
            # The read cases are found, the clean ones stay clean.
            assert row["agree"]["check"] is True, row
    table = (out / "table.md").read_text()
    assert "| check-reads_memcmp | reads |" in table and "check +ms" in table
    # --from-json renders the same rows again.
    again = out / "again"
    replay = [
        sys.executable, "-m", "bench", "--from-json", str(out / "results.json"),
        "--no-plots", "--out", str(again),
    ]  # fmt: skip
    proc = subprocess.run(replay, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "| check-reads_memcmp | reads |" in (again / "table.md").read_text()
