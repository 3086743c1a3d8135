"""Contract: statistics and introspection API (refmalloc.h) and the JSON report."""

import json
import os
import re

from rmhelpers import assert_ok, describe

from pyalloc import tables


def _stats_fields():
    # refmalloc.h's REFMALLOC_STATS list (test_config_unit checks this reading of it).
    fields = [stat.name for stat in tables.stats()]
    assert len(fields) > 20
    return fields


def test_query_reports_exact_pages_written_and_rejects_other_addresses(build, run_prog, tmp_path):
    # With a report configured the library also counts the written pages of freed blocks.
    cp = assert_ok(run_prog(build("stats.c"), ["query"], options=f"report={tmp_path}/r.json"))
    assert "OK query" in cp.stdout


def _live(stdout):
    out = []
    for ln in stdout.splitlines():
        if ln.startswith("LIVE "):
            _, addr, size, written, kind = ln.split()
            out.append((int(addr), int(size), None if written == "-" else int(written), kind))
    return out


def _pid(stdout):
    return int(re.search(r"^PID (\d+)", stdout, re.M).group(1))


def _check_report(path, stdout, page_size, pattern=170, free_pattern=None, threshold=131072):
    rep = json.loads(path.read_text())
    assert isinstance(rep["refmalloc"], str) and rep["refmalloc"]
    assert rep["pid"] == _pid(stdout)
    assert rep["pattern"] == pattern
    assert rep["free_pattern"] == free_pattern
    assert rep["threshold"] == threshold
    assert rep["page_size"] == page_size
    stats = rep["stats"]
    missing = [f for f in _stats_fields() if f not in stats]
    assert not missing, f"report stats lack {missing}"
    assert "version" not in stats
    assert all(isinstance(stats[f], int) for f in _stats_fields())
    blocks = {b["address"]: b for b in rep["live_blocks"]}
    for b in rep["live_blocks"]:
        assert set(b) >= {"address", "size", "usable", "pages", "pages_written", "kind"}, b
        assert b["kind"] in ("refpage", "eager", "zero")
    live = _live(stdout)
    assert live
    for addr, size, written, kind in live:
        assert addr in blocks, f"live block {addr:#x} missing from report {rep['live_blocks']}"
        b = blocks[addr]
        assert b["size"] == size and b["usable"] >= size and b["kind"] == kind, b
        assert b["pages"] >= size // page_size, b
        if written is not None:
            assert b["pages_written"] == written, b
    assert stats["live_large_blocks"] == len(rep["live_blocks"])
    return rep


def test_report_written_at_exit_with_contract_keys(build, run_prog, tmp_path, page_size):
    path = tmp_path / "report.json"
    cp = assert_ok(run_prog(build("stats.c"), ["report"], options=f"report={path}"))
    assert path.is_file(), describe(cp)
    rep = _check_report(path, cp.stdout, page_size)
    assert rep["stats"]["large_allocs"] >= 8


def test_report_reflects_pattern_free_pattern_threshold(build, run_prog, tmp_path, page_size):
    path = tmp_path / "report.json"
    cp = assert_ok(
        run_prog(
            build("stats.c"),
            ["report"],
            options=f"pattern=0x5c,free_pattern=0x11,threshold=64k,report={path}",
            env={"TEST_PATTERN": "0x5c", "TEST_THRESHOLD": 65536},
        )
    )
    _check_report(path, cp.stdout, page_size, pattern=0x5C, free_pattern=0x11, threshold=65536)


def test_report_path_expands_pid(build, run_prog, tmp_path, page_size):
    cp = assert_ok(run_prog(build("stats.c"), ["report"], options=f"report={tmp_path}/r-%p.json"))
    pid = _pid(cp.stdout)
    path = tmp_path / f"r-{pid}.json"
    assert path.is_file(), (os.listdir(tmp_path), describe(cp))
    _check_report(path, cp.stdout, page_size)


def test_report_never_overwrites_existing_file(build, run_prog, tmp_path):
    path = tmp_path / "report.json"
    path.write_text("KEEP ME\n")
    cp = run_prog(build("stats.c"), ["report"], options=f"report={path}")
    assert cp.returncode == 0, describe(cp)
    assert path.read_text() == "KEEP ME\n"
    msgs = [ln for ln in cp.stderr.splitlines() if ln.startswith("refmalloc")]
    assert msgs and any(str(path) in ln for ln in msgs), describe(cp)


def test_report_does_not_follow_symlink(build, run_prog, tmp_path):
    target = tmp_path / "target.json"
    link = tmp_path / "link.json"
    link.symlink_to(target)  # dangling: following it would create target
    cp = run_prog(build("stats.c"), ["report"], options=f"report={link}")
    assert cp.returncode == 0, describe(cp)
    assert not target.exists(), "report followed the symlink"
    assert link.is_symlink()
    assert [ln for ln in cp.stderr.splitlines() if ln.startswith("refmalloc")], describe(cp)
    # symlink to an existing file: file untouched
    target.write_text("ORIGINAL\n")
    cp = run_prog(build("stats.c"), ["report"], options=f"report={link}")
    assert cp.returncode == 0, describe(cp)
    assert target.read_text() == "ORIGINAL\n"


def test_write_report_api_creates_file_once(build, run_prog, tmp_path, page_size):
    path = tmp_path / "api.json"
    cp = assert_ok(run_prog(build("stats.c"), ["write-report", path]))
    _check_report(path, cp.stdout, page_size)


def test_no_report_without_option(build, run_prog, tmp_path):
    cp = assert_ok(run_prog(build("stats.c"), ["report"], cwd=tmp_path))
    assert os.listdir(tmp_path) == []
    assert cp.stderr == ""


def test_forked_child_report_names_parent_and_counts_from_the_fork(build, run_prog, tmp_path):
    cp = assert_ok(run_prog(build("forkreport.c"), [], options=f"report={tmp_path}/r-%p.json"))
    child, parent = map(int, re.search(r"CHILD (\d+) PARENT (\d+)", cp.stdout).groups())
    reports = {p: json.loads((tmp_path / f"r-{p}.json").read_text()) for p in (child, parent)}
    assert reports[child]["forked_from"] == parent
    assert reports[parent]["forked_from"] is None
    assert reports[child]["stats"]["large_allocs"] == 5
    assert reports[parent]["stats"]["large_allocs"] == 3
    assert len(reports[child]["freed_blocks"]) == 5
