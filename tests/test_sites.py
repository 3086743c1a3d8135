"""Call sites: the sites= log names every allocation site by module and offset,
and site_list= gives the blocks of the listed sites site_pattern instead."""

import subprocess
from pathlib import Path

from rmhelpers import assert_ok


def _sites(log):
    rows = []
    for line in log.read_text().splitlines():
        if line.startswith("#"):
            continue
        count, module, offset, symbol = line.split("\t")
        rows.append((int(count), module, offset, symbol, line))
    return rows


def _function(module, offset):
    # The return address lies just after the call: offset - 1 is inside it.
    out = subprocess.run(
        ["addr2line", "-f", "-e", module, hex(int(offset, 16) - 1)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()[0]


def test_sites_log_names_each_call_site(build, run_prog, tmp_path):
    exe = build("sites.c")
    log = tmp_path / "sites.log"
    cp = assert_ok(run_prog(exe, [], options=f"sites={log}"))
    assert cp.stdout.split() == ["78", "aa", "aa"]
    own = {_function(m, off) for _, m, off, _, _ in _sites(log) if m.endswith(Path(exe).name)}
    assert own == {"make_clean", "make_dirty_small", "make_dirty_large"}, own


def test_site_list_gives_only_the_listed_sites_the_site_pattern(build, run_prog, tmp_path):
    exe = build("sites.c")
    log = tmp_path / "sites.log"
    assert_ok(run_prog(exe, [], options=f"sites={log}"))
    rows = [r for r in _sites(log) if r[1].endswith(Path(exe).name)]
    large = [r[4] for r in rows if _function(r[1], r[2]) == "make_dirty_large"]
    listing = tmp_path / "list"
    listing.write_text("\n".join(large) + "\n")
    cp = assert_ok(run_prog(exe, [], options=f"site_list={listing},site_pattern=0x5c"))
    assert cp.stdout.split() == ["78", "aa", "5c"]
    listing.write_text("\n".join(r[4] for r in rows) + "\n")
    cp = assert_ok(run_prog(exe, [], options=f"site_list={listing},site_pattern=0x5c"))
    assert cp.stdout.split() == ["78", "5c", "5c"]


def test_unreadable_site_list_is_reported_and_ignored(build, run_prog, tmp_path):
    cp = assert_ok(run_prog(build("sites.c"), [], options=f"site_list={tmp_path}/missing"))
    assert cp.stdout.split() == ["78", "aa", "aa"]
    assert "refmalloc: site_list: cannot read" in cp.stderr


def test_report_names_the_site_of_each_large_block(build, run_prog, tmp_path):
    # With sites= the report's large blocks carry their call site in the log's
    # terms (module, offset, symbol), so reports can be grouped by site.
    import json

    exe = build("sites.c")
    log = tmp_path / "sites.log"
    report = tmp_path / "report.json"
    assert_ok(run_prog(exe, [], options=f"sites={log},report={report}"))
    (block,) = [b for b in json.loads(report.read_text())["live_blocks"] if b["size"] == 1 << 20]
    site = block["site"]
    assert site["module"].endswith(Path(exe).name)
    assert _function(site["module"], site["offset"]) == "make_dirty_large"
    logged = {(m, int(off, 16)) for _, m, off, _, _ in _sites(log)}
    assert (site["module"], int(site["offset"], 16)) in logged
    # Without sites= nothing is recorded, and the report says nothing of sites.
    report.unlink()
    assert_ok(run_prog(exe, [], options=f"report={report}"))
    assert all("site" not in b for b in json.loads(report.read_text())["live_blocks"])
