"""Contract: refmalloc_page_states page by page, and the report's freed blocks and memory."""

import json
import os
import subprocess

from rmhelpers import assert_ok


def test_page_states_tell_untouched_pattern_and_written_pages(build, run_prog):
    cp = assert_ok(run_prog(build("pagestates.c"), ["states"]))
    assert "OK states" in cp.stdout


def test_pagemap_scan_and_pread_give_the_same_page_states(build, run_prog):
    # pagemap_scan=1 asks the kernel for the written runs (PAGEMAP_SCAN,
    # Linux 6.7+); pagemap_scan=0 forces the fallback of older kernels, pread
    # of every page's entry. Both must answer the same, page by page.
    exe = build("pagestates.c")
    scan = assert_ok(run_prog(exe, ["runs"], options="pagemap_scan=1")).stdout
    pread = assert_ok(run_prog(exe, ["runs"], options="pagemap_scan=0")).stdout
    assert scan == pread
    writes = {
        "none": lambda i: False,
        "first": lambda i: i == 0,
        "other": lambda i: i % 2 == 0,
        "three7": lambda i: i % 7 < 3,
        "all": lambda i: True,
    }
    lines = {line.split()[0]: line.split()[1:] for line in scan.splitlines()}
    for name, written in writes.items():
        count, states = lines[name]
        want = "".join("W" if written(i) else "U" for i in range(300))
        assert states == want, name
        assert int(count) == want.count("W"), name
    count, states = lines["anon"]
    assert states == "".join("W" if i % 3 == 0 else "U" for i in range(30))
    assert int(count) == -1  # not a block of ours
    assert "RESTORED" in lines


def test_a_kernel_without_pagemap_scan_falls_back_to_pread(build, run_prog, lib):
    # The ioctl refused with ENOTTY (a kernel older than 6.7, forced by a
    # seccomp filter installed before exec): the same answers, from pread.
    exe = build("pagestates.c")
    want = assert_ok(run_prog(exe, ["runs"], options="pagemap_scan=0")).stdout
    env = dict(os.environ, NOSCAN_PRELOAD=lib, REFMALLOC_OPTIONS="pagemap_scan=1")
    env.pop("LD_PRELOAD", None)
    cp = subprocess.run(
        [build("noscan.c"), exe, "runs"], capture_output=True, text=True, env=env, timeout=60
    )
    assert cp.returncode == 0, cp.stderr
    assert cp.stdout == want
    assert cp.stderr == ""


def test_report_lists_freed_blocks_with_written_pages_and_memory(build, run_prog, tmp_path):
    report = tmp_path / "report.json"
    cp = assert_ok(run_prog(build("pagestates.c"), ["report"], options=f"report={report}"))
    rep = json.loads(report.read_text())
    freed = {b["size"]: b for b in rep["freed_blocks"]}
    expected = [line.split()[1:] for line in cp.stdout.splitlines() if line.startswith("FREED")]
    assert len(expected) == 3
    for size, written in expected:
        b = freed[int(size)]
        assert b["pages_written"] == int(written), b
        assert b["pages"] == 40 + (int(size) % rep["page_size"] != 0), b
        assert b["kind"] == "refpage", b
    mem = rep["memory"]
    assert mem["anonymous"] > 0 and mem["pss"] >= mem["anonymous"], mem


def test_report_counts_untouched_and_read_calloc_pages_as_not_written(build, run_prog, tmp_path):
    # issue 15 item 9: a large calloc block (anonymous zeros) was reported written whole.
    report = tmp_path / "report.json"
    cp = assert_ok(run_prog(build("zeroreport.c"), options=f"report={report}"))
    live = {b["size"]: b for b in json.loads(report.read_text())["live_blocks"]}
    for line in cp.stdout.splitlines():
        if line.startswith("WRITTEN"):
            size, written = map(int, line.split()[1:])
            b = live[size]
            assert b["kind"] == "zero", b
            # Only the pages written (one each; a transparent huge page at most).
            assert written <= b["pages_written"] <= written * 512, b
            assert b["pages_written"] < b["pages"], b
