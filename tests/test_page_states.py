"""Contract: refmalloc_page_states page by page, and the report's freed blocks and memory."""

import json

from rmhelpers import assert_ok


def test_page_states_tell_untouched_pattern_and_written_pages(build, run_prog):
    cp = assert_ok(run_prog(build("pagestates.c"), ["states"]))
    assert "OK states" in cp.stdout


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
