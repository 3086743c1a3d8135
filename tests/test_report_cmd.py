"""``refmalloc report``: reading reports, the numpy analysis, the table, --json, --plot.

The analysis is checked on hand-made reports whose figures are known; one test renders
a report written by the real library for a real program.
"""

from __future__ import annotations

import html
import json
import math
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from pyalloc import reports
from pyalloc.cli import main
from pyalloc.plot import MISSING_MESSAGE

PAGE = 4096


def process(
    pid: int,
    live: Sequence[tuple[int, int, str]] = (),
    freed: Sequence[tuple[int, int, str]] = (),
    **stats: int,
) -> dict[str, Any]:
    """A library report: blocks as (pages, pages_written, kind)."""

    def block(pages: int, written: int, kind: str) -> dict[str, Any]:
        return {
            "address": 0x7F0000000000,
            "size": pages * PAGE,
            "usable": pages * PAGE,
            "pages": pages,
            "pages_written": written,
            "kind": kind,
        }

    return {
        "refmalloc": "0.1.0",
        "pid": pid,
        "pattern": 0xAA,
        "free_pattern": None,
        "threshold": 128 << 10,
        "page_size": PAGE,
        "stats": {"small_allocs": 10, "small_bytes": 1000, **stats},
        "memory": {"anonymous": 3 * PAGE, "pss": 5 * PAGE},
        "live_blocks": [block(*b) for b in live],
        "freed_blocks": [block(*b) for b in freed],
    }


def write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


# --- analysis --------------------------------------------------------------------------


def test_blocks_columns() -> None:
    procs = [
        process(1, live=[(100, 10, "refpage"), (50, 50, "eager")], freed=[(8, 2, "refpage")]),
        process(2, live=[(4, 0, "zero")]),
    ]
    blocks = reports.Blocks.of(procs)
    assert len(blocks) == 4
    assert blocks.pid.tolist() == [1, 1, 1, 2]
    assert blocks.live.tolist() == [True, True, False, True]
    assert blocks.pages_pattern.tolist() == [90, 0, 6, 4]
    # Eager and zero blocks save nothing against eager filling.
    assert blocks.saved_bytes.tolist() == [90 * PAGE, 0, 6 * PAGE, 0]
    assert blocks.saved_bytes.dtype == np.int64
    empty = reports.Blocks.of([process(3)])
    assert len(empty) == 0 and empty.saved_bytes.sum() == 0


def test_summarize_totals() -> None:
    one = process(
        1,
        live=[(100, 10, "refpage"), (50, 50, "eager")],
        refpage_allocs=3,
        refpage_bytes=300 * PAGE,
        peak_refpage_bytes=200 * PAGE,
        freed_pages=200,
        freed_pages_written=20,
        fallback_budget=1,
    )
    two = process(2, live=[(40, 40, "refpage")], peak_refpage_bytes=40 * PAGE, fallback_memfd=2)
    s = reports.summarize([one, two])
    assert s.pids == [1, 2]
    assert s.paths["small"] == {"blocks": 20, "bytes": 2000}
    assert s.paths["refpage"] == {"blocks": 3, "bytes": 300 * PAGE}
    assert s.peak_refpage_bytes == 200 * PAGE  # the largest peak, not a sum
    assert s.refpage_pages == {"total": 340, "written": 70, "never_written": 270}
    assert s.eager_equivalent == {
        "eager_bytes": 340 * PAGE,
        "written_bytes": 70 * PAGE,
        "saved_bytes": 270 * PAGE,
    }
    assert s.live_at_exit["refpage_blocks"] == 2
    assert s.live_at_exit["eager_bytes"] == 140 * PAGE
    assert s.memory == {"anonymous": 6 * PAGE, "pss": 10 * PAGE}
    assert s.fallbacks["fallback_budget"] == 1
    assert s.fallbacks["fallback_memfd"] == 2
    assert s.large_blocks_listed == 3
    text = reports.render(s)
    assert "2 processes" in text
    assert "70 of 340 (20.6%); never written 270" in text
    assert "saved 1.1 MiB" in text
    assert "1 mapping budget reached; 2 memfd could not be created" in text
    assert "forked child" in text  # the caveat of summing forked processes


def test_summarize_without_memory_section() -> None:
    old = process(1)
    del old["memory"], old["freed_blocks"]
    s = reports.summarize([old])
    assert s.memory == {"anonymous": None, "pss": None}
    assert "anonymous n/a, PSS n/a" in reports.render(s)


@pytest.mark.parametrize(
    ("n", "text"), [(0, "0 B"), (1023, "1023 B"), (1536, "1.5 KiB"), (3 << 30, "3.0 GiB")]
)
def test_human(n: int, text: str) -> None:
    assert reports.human(n) == text


def test_expand_pid() -> None:
    assert reports.expand_pid("/tmp/r-%p.json", 42) == "/tmp/r-42.json"
    assert reports.expand_pid("/tmp/100%%-%p", 7) == "/tmp/100%-7"


# --- loading ---------------------------------------------------------------------------


def test_load_library_and_run_reports(tmp_path: Path) -> None:
    single = write(tmp_path / "one.json", process(5))
    assert [p["pid"] for p in reports.load(single)] == [5]
    run = reports.run_report(["prog"], 0, 6, [process(6), process(7)])
    assert [p["pid"] for p in reports.load(write(tmp_path / "run.json", run))] == [6, 7]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("{not json", "invalid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"pid": 1}', "missing 'pattern'"),
        ('{"processes": 3}', "'processes' is not a list"),
    ],
)
def test_report_rejects_bad_files(tmp_path: Path, content: str, message: str) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = CliRunner().invoke(main, ["report", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}: " in result.output and message in result.output


def test_report_missing_file(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path / "none.json")])
    assert result.exit_code == 1
    assert "cannot read it (No such file or directory)" in result.output


def test_report_needs_a_file() -> None:
    result = CliRunner().invoke(main, ["report"])
    assert result.exit_code == 2
    assert "Missing argument" in result.output


# --- the command -----------------------------------------------------------------------


def test_report_table_and_json(tmp_path: Path) -> None:
    a = write(tmp_path / "a.json", process(11, live=[(10, 1, "refpage")]))
    b = write(
        tmp_path / "b.json",
        reports.run_report(["x"], 0, 12, [process(12, freed_pages=4, freed_pages_written=4)]),
    )
    result = CliRunner().invoke(main, ["report", a, b])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("refmalloc report: 2 processes\n")
    assert "5 of 14 (35.7%)" in result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("pid "))
    # Hand-made reports without exe and argv: the process column says "?".
    assert lines[header + 1].split()[:3] == ["11", "?", "0xaa"]
    assert lines[header + 2].split()[:3] == ["12", "?", "0xaa"]

    result = CliRunner().invoke(main, ["report", "--json", a, b])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["files"] == [{"file": a, "pids": [11]}, {"file": b, "pids": [12]}]
    assert doc["total"]["refpage_pages"] == {"total": 14, "written": 5, "never_written": 9}
    assert [p["pids"] for p in doc["processes"]] == [[11], [12]]


def _sited(block: dict[str, Any], module: str, offset: int, symbol: str | None) -> dict[str, Any]:
    return {**block, "site": {"module": module, "offset": hex(offset), "symbol": symbol}}


def sited_run() -> list[dict[str, Any]]:
    """Two processes with named blocks: a 64 MiB and a 200 KiB site in ``prog``, and a
    child ``sort`` whose blocks were all below the threshold (no refpage block)."""
    parent = process(
        100,
        live=[(16384, 16, "refpage")],
        freed=[(50, 50, "refpage"), (50, 5, "refpage")],
        refpage_allocs=3,
        refpage_bytes=16484 * PAGE,
        small_bytes=5 << 20,
    )
    parent["live_blocks"][0] = _sited(parent["live_blocks"][0], "/usr/bin/prog", 0x1234, None)
    parent["freed_blocks"] = [
        _sited(b, "/lib/libbig.so", 0x99, "make_table") for b in parent["freed_blocks"]
    ]
    parent["exe"] = "/usr/bin/prog"
    parent["argv"] = ["/usr/bin/prog", "--big"]
    child = process(101, small_bytes=3 << 20)
    child["exe"] = "/usr/bin/sort"  # no argv: the executable's name
    return [parent, child]


def test_plot_figure_log_axes_site_groups_process_names() -> None:
    from pyalloc.plot import figure

    fig = figure(sited_run(), resolve=False)
    sites, procs = fig.axes[:2]
    assert sites.get_xscale() == "log" and procs.get_xscale() == "log"
    labels = [t.get_text() for t in sites.get_yticklabels()]
    # Grouped by site, largest first; each group says its site and its process.
    assert labels == [
        "prog+0x1234\nprog --big [100]",
        "make_table (libbig.so+0x99)\nprog --big [100]",
    ]
    # The 200 KiB group is visible next to the 64 MiB one: its bar spans more than a
    # tenth of the axis width (on a linear axis it would be 0.3% of it).
    lo, hi = sites.get_xlim()
    spans = sorted((p for p in sites.patches if p.get_height() == 0.8), key=lambda p: p.get_width())
    small = spans[0]
    assert (math.log2(small.get_x() + small.get_width()) - math.log2(lo)) / (
        math.log2(hi) - math.log2(lo)
    ) > 0.1
    names = "\n".join(t.get_text() for t in procs.get_yticklabels())
    assert "prog --big [100]" in names and "sort [101]" in names
    assert "refpages saved" in names and "no refpage blocks" in names


def test_plot_no_refpage_blocks_has_no_empty_panel() -> None:
    """A program whose blocks are all small (ls, python -c 'pass'): the process panel
    still shows its small blocks and memory; the site panel says why it has none."""
    from pyalloc.plot import figure

    fig = figure([process(7, small_bytes=1 << 20)], resolve=False)
    sites, procs = fig.axes[:2]
    drawn = [p for p in procs.patches if p.get_width() > 0]
    assert drawn, "the process panel is empty"
    assert any("no large blocks" in t.get_text() for t in sites.texts)
    assert [t.get_text() for t in procs.get_yticklabels()] == ["pid 7\nno refpage blocks"]


def test_plot_caps_groups_with_an_other_row() -> None:
    from pyalloc.plot import MAX_GROUPS, figure

    proc = process(5, live=[(40 + i, 1, "refpage") for i in range(30)])
    proc["live_blocks"] = [
        _sited(b, "/usr/bin/many", 0x100 + i, None) for i, b in enumerate(proc["live_blocks"])
    ]
    fig = figure([proc], resolve=False)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(labels) == MAX_GROUPS
    assert labels[0].startswith("many+0x11d") and labels[-1].startswith("other sites")


def test_report_plot(tmp_path: Path) -> None:
    src = write(tmp_path / "r.json", reports.run_report(["prog"], 0, 100, sited_run()))
    out = tmp_path / "blocks.png"
    result = CliRunner().invoke(main, ["report", "--plot", str(out), src])
    assert result.exit_code == 0, result.output
    # One line of totals and where the picture went, not the table (issue 15 item 14).
    total = reports.summarize(reports.parse(json.loads(Path(src).read_text()), src))
    assert result.output == f"{reports.render_line(total)}; plot written to {out}\n"
    assert result.output.startswith("refmalloc report: 2 processes, "), result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # No large blocks at all still gives a picture.
    empty = write(tmp_path / "e.json", process(2))
    assert (
        CliRunner().invoke(main, ["report", "--plot", str(tmp_path / "e.svg"), empty]).exit_code
        == 0
    )
    assert (tmp_path / "e.svg").read_text().lstrip().startswith("<?xml")


def test_report_plot_of_a_real_run_names_its_sites(build, tmp_path: Path) -> None:
    """The library's own report, run with --sites: the site panel names the function
    that allocated the 1 MiB block (sites.c's make_dirty_large, by addr2line)."""
    from pyalloc.plot import figure

    exe = build("sites.c")
    run = tmp_path / "run.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyalloc",
            "run",
            "--sites",
            str(tmp_path / "s-%p.log"),
            "--report",
            str(run),
            "--",
            exe,
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    fig = figure(reports.load(run))
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert any(label.startswith("make_dirty_large (sites.c:") for label in labels), labels


def test_report_plot_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The optional extra missing: a clear message, exit 1, no file."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import raises ImportError
    src = write(tmp_path / "r.json", process(1))
    out = tmp_path / "p.png"
    result = CliRunner().invoke(main, ["report", "--plot", str(out), src])
    assert result.exit_code == 1
    assert MISSING_MESSAGE in result.output
    assert "pip install matplotlib" in result.output and "'.[plot]'" in result.output
    assert not out.exists()


def test_report_of_a_real_run(tmp_path: Path) -> None:
    """A report written by the library for a real program renders, with its blocks."""
    run = tmp_path / "run.json"
    script = (
        "import numpy as np\n"
        "keep = np.empty(8 << 20, np.uint8)\n"
        "keep[: 1 << 20] = 1\n"
        "import pyalloc\n"
        f"assert pyalloc.write_report({str(tmp_path / 'now.json')!r}) is None\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "pyalloc", "run", "--report", str(run), "--", sys.executable],
        input=script.encode(),
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    # The report written on request, mid-run, shows the live 8 MiB block, 1 MiB written.
    (now,) = reports.load(tmp_path / "now.json")
    big = [b for b in now["live_blocks"] if b["size"] == 8 << 20]
    assert len(big) == 1 and big[0]["kind"] == "refpage"
    page = now["page_size"]
    assert big[0]["pages_written"] in range((1 << 20) // page, (1 << 20) // page + 2)
    out = subprocess.run(
        [sys.executable, "-m", "pyalloc", "report", str(tmp_path / "now.json"), str(run)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()
    assert b"refpage pages written" in out.stdout
    assert b"memory at exit" in out.stdout


CHECK_RESULT: dict[str, Any] = {
    "command": ["prog", "<&>"],
    "verdict": "dependence",
    "exit_code": 1,
    "patterns": [170, 85],
    "runs": [],
    "comparisons": [],
    "findings": [
        {
            "kind": "uninitialized",
            "observable": "stdout",
            "difference": {"offset": 3, "line": 1, "context": "<aa>", "other_context": "55"},
        }
    ],
    "notes": [],
    "locate": {
        "sites_logged": 2,
        "runs": 3,
        "sites": [
            {
                "module": "/usr/bin/prog",
                "offset": "0x1234",
                "allocations": 1,
                "symbol": None,
                "function": "fill_table",
                "file": "prog.c",
                "line": 7,
            }
        ],
        "note": None,
    },
}


def test_report_check_result_needs_html(tmp_path: Path) -> None:
    src = write(tmp_path / "check.json", CHECK_RESULT)
    result = CliRunner().invoke(main, ["report", src])
    assert result.exit_code == 1
    assert "a `refmalloc check --json` result, not a report; --html shows it" in result.output


def test_report_html_page_without_matplotlib(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page is written without the plot extra (it says why there is no picture);
    text from the reports is escaped; the site check named is marked in the site table."""
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    run = write(tmp_path / "r.json", reports.run_report(["prog"], 0, 100, sited_run()))
    check = write(tmp_path / "check.json", CHECK_RESULT)
    out = tmp_path / "page.html"
    result = CliRunner().invoke(main, ["report", "--html", str(out), run, check])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert f"No picture: {html.escape(MISSING_MESSAGE)}" in page and "<img" not in page
    assert "&lt;aa&gt;" in page and "<aa>" not in page
    assert (
        '<tr class="located" data-pid="100"><td data-key="site" title="/usr/bin/prog+0x1234">'
        in page
    )
    # Only a check result: a page, no process sections.
    alone = tmp_path / "alone.html"
    result = CliRunner().invoke(main, ["report", "--html", str(alone), check])
    assert result.exit_code == 0, result.output
    assert "fill_table" in alone.read_text() and 'id="processes"' not in alone.read_text()
