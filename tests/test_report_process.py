"""Process reports: which program each process ran (exe, argv), and `refmalloc report`'s
table, whose columns add up (issue 15 item 11)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from click.testing import CliRunner
from rmhelpers import assert_ok

from pyalloc.cli import main


def test_report_names_the_program_and_its_arguments(build, run_prog, tmp_path: Path) -> None:
    exe = build("procname.c")
    cp = assert_ok(run_prog(exe, ["start", "1 2"], options=f"report={tmp_path}/r-%p.json"))
    pids = {k: int(v) for k, v in re.findall(r"(\w+) (\d+)", cp.stdout)}
    # The raw text parses as strict JSON: every byte escaped or valid UTF-8.
    raw = {k: (tmp_path / f"r-{pid}.json").read_bytes() for k, pid in pids.items()}
    for text in raw.values():
        text.decode("utf-8")
    rep = {k: json.loads(text) for k, text in raw.items()}
    real = os.path.realpath(exe)
    assert rep["PARENT"]["exe"] == real
    assert rep["PARENT"]["argv"] == [exe, "start", "1 2"]
    # A forked child is the parent's program, with the parent's arguments.
    assert rep["FORKED"]["exe"] == real
    assert rep["FORKED"]["argv"] == [exe, "start", "1 2"]
    assert rep["FORKED"]["forked_from"] == pids["PARENT"]
    # After exec, the new program's: bytes that are not UTF-8 become lone surrogates
    # (\udcXX, Python's surrogateescape), which os.fsencode turns back into the bytes.
    execed = rep["EXECED"]
    assert execed["exe"] == real
    assert [os.fsencode(arg) for arg in execed["argv"]] == [
        b"procname-exec", b'a"b\\c\nd', b"\xc3\xa9", b"x\xffy\xc3", b"\xc0\xaf", b"",
    ]  # fmt: skip
    assert execed["argv"][2] == "\u00e9"
    assert b"\\udcff" in raw["EXECED"] and b"\\u000a" in raw["EXECED"]


MIB = 1 << 20


def test_columns_add_up_and_a_grown_block_counts_its_grown_size(
    build, run_prog, tmp_path: Path
) -> None:
    """A real run with small, refpage (one reused, one grown by realloc), large calloc and
    fallback blocks: large = refpage + eager + zero, in blocks and in bytes, and the
    table shows it (issue 15 item 11). Before, a block reused from the cache counted in
    large only, and a grown block's bytes were its size before realloc."""
    report = tmp_path / "r.json"
    cp = assert_ok(run_prog(build("kinds.c"), options=f"report={report},max_mappings=40"))
    grown_size, grown_pages = map(int, re.search(r"GROWN (\d+) (\d+)", cp.stdout).groups())
    rep = json.loads(report.read_text())
    st = rep["stats"]
    kinds = ("refpage", "eager", "zero")
    assert all(st[f"{k}_allocs"] > 0 for k in ("small", *kinds)), st
    assert st["cache_hits"] >= 1 and st["fallback_budget"] >= 1, st
    assert st["large_allocs"] == sum(st[f"{k}_allocs"] for k in kinds), st
    assert st["large_bytes"] == sum(st[f"{k}_bytes"] for k in kinds), st
    # Every refpage block but the grown one is 1 MiB; the grown one counts its largest
    # size, 4 MiB, once (shrunk to 2 MiB and grown back, it counts nothing more).
    assert st["refpage_bytes"] == (st["refpage_allocs"] - 1) * MIB + grown_size, st
    # Its pages, at free, are its grown pages: one written before realloc, one after.
    (grown,) = [b for b in rep["freed_blocks"] if b["size"] == grown_size]
    assert (grown["kind"], grown["pages"], grown["pages_written"]) == ("refpage", grown_pages, 2)

    from pyalloc import reports

    table = reports.render_processes([rep]).splitlines()
    # Figures are right-aligned under their headings: each cell ends where its heading does.
    ends = [(m.group(), m.end()) for m in re.finditer(r"\S+", table[0])]
    row = {name: table[1][ends[i - 1][1] : end].strip() for i, (name, end) in enumerate(ends) if i}
    counts = {k: int(row[k].replace(",", "")) for k in ("large", *kinds)}
    assert counts["large"] == counts["refpage"] + counts["eager"] + counts["zero"], table
    assert counts["large"] == st["large_allocs"]
    text = CliRunner().invoke(main, ["report", str(report)]).output
    assert f"large blocks              {st['large_allocs']:,} (" in text, text


def _proc(pid: int, **fields: object) -> dict[str, object]:
    return {
        "pid": pid, "pattern": 0xAA, "threshold": 128 << 10, "page_size": 4096,
        "stats": {"small_allocs": 1}, **fields,
    }  # fmt: skip


def test_report_table_names_each_process(tmp_path: Path) -> None:
    """`refmalloc report` names a process by its program and arguments, not by its pid
    alone: the base name of exe, arguments quoted, bytes that were not UTF-8 as \\xNN,
    cut to NAME_WIDTH; a report without exe and argv (an older library) by its pid."""
    from pyalloc import reports

    procs = [
        _proc(11, exe="/usr/bin/python3.11", argv=["python3", "-c", "print(1)", "x\udcffy"]),
        _proc(12, exe="/opt/tool", argv=["tool", *["--flag"] * 20]),
        _proc(13),
    ]
    run = tmp_path / "run.json"
    run.write_text(json.dumps(reports.run_report(["python3"], 0, 11, procs)))
    result = CliRunner().invoke(main, ["report", str(run)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("pid "))
    assert lines[header].split()[:3] == ["pid", "process", "pattern"]
    assert lines[header + 1].startswith("11   python3.11 -c 'print(1)' 'x\\xffy'  ")
    cut = "tool" + " --flag" * 5 + "\u2026"
    assert len(cut) == reports.NAME_WIDTH
    assert lines[header + 2].startswith(f"12   {cut}  ")
    assert lines[header + 3].startswith("13   ?    ")
    (tmp_path / "one.json").write_text(json.dumps(procs[0]))
    one = CliRunner().invoke(main, ["report", str(tmp_path / "one.json")])
    assert one.output.startswith(
        "refmalloc report: python3.11 -c 'print(1)' 'x\\xffy' (pid 11)\n"
    ), one.output
    # A surrogate no library writes (a hand-edited file) is shown escaped, not an error.
    edited = _proc(14, exe="/bin/x", argv=["x", "a\ud800b"])
    assert reports.process_name(edited) == "x 'a\\ud800b'"
    doc = json.loads(CliRunner().invoke(main, ["report", "--json", str(run)]).output)
    assert doc["total"]["names"][2] == "pid 13"
