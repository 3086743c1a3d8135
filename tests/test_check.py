"""refmalloc check: the command line, the JSON report, nondeterminism filtering."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from check_corpus.corpus import command
from rmhelpers import run_cli

from pyalloc.check import CheckConfig, run_check
from pyalloc.check.compare import compare_bytes
from pyalloc.check.locate import Site, bisect, merge_logs, parse_log


@pytest.fixture(scope="module")
def bindir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("check-cli")


def _cli(lib, *args, cwd=None, stdin=None):
    return run_cli(lib, "check", *args, cwd=cwd, input=stdin)


def test_cli_text_report_names_stream_offset_context_and_pattern(lib, bindir):
    cp = _cli(lib, "--", *command("dirty_realloc.c", bindir))
    assert cp.returncode == 1, cp.stderr
    out = cp.stdout
    assert "stdout: first difference at byte 8 (line 1)" in out
    assert "0xaa: 'abcdefgh\\xaa\\xaa\\xaa\\xaa\\n'" in out
    assert "0x55: 'abcdefghUUUU\\n'" in out
    assert "equal to the pattern bytes: yes" in out
    assert "FINDING: stdout depends on uninitialized heap memory" in out
    assert "verdict: DEPENDENCE found (exit 1)" in out


def test_cli_json_with_locate(lib, bindir):
    cp = _cli(lib, "--json", "--locate", "--", *command("dirty_small.c", bindir))
    assert cp.returncode == 1, cp.stderr
    report = json.loads(cp.stdout)
    assert report["verdict"] == "dependence" and report["exit_code"] == 1
    assert report["patterns"] == [0xAA, 0x55]
    assert report["aslr_disabled"] is True
    # 0xaa against 0x55, and against 0x00 (the tracked run, issue 13 part 3).
    finding, zero = report["findings"]
    assert finding["kind"] == "uninitialized" and finding["observable"] == "stdout"
    assert finding["patterns"] == [0xAA, 0x55] and zero["patterns"] == [0xAA, 0]
    assert zero["difference"]["other_context"] == "counter=1\n"
    assert finding["difference"]["offset"] == len("counter=")
    assert finding["difference"]["context"] == "counter=171\n"
    assert finding["difference"]["other_context"] == "counter=86\n"
    [site] = report["locate"]["sites"]
    assert site["function"] == "alloc_counter"
    assert site["file"].endswith("dirty_small.c") and site["line"] == 7
    assert {r["label"] for r in report["runs"]} >= {"A1", "A2", "B1", "A3", "B2"}


def test_cli_clean_program_exits_0(lib, bindir):
    cp = _cli(lib, "--", *command("clean_libc.c", bindir))
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "stdout: same" in cp.stdout


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--pattern", "0x100", "--", "true"],
        ["--", "no-such-command-xyz"],
        ["--jobs", "0", "true"],
    ],
)
def test_usage_errors_exit_2(lib, args):
    cp = _cli(lib, *args)
    assert cp.returncode == 2, cp.stdout + cp.stderr


def test_missing_library_exits_2(tmp_path):
    env = {**os.environ, "REFMALLOC_LIB": str(tmp_path / "nope.so")}
    cp = subprocess.run(
        [sys.executable, "-m", "pyalloc", "check", "--", "true"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert cp.returncode == 2 and "REFMALLOC_LIB" in cp.stderr


def test_stdin_file_is_fed_to_every_run(lib, tmp_path):
    data = tmp_path / "in.txt"
    data.write_text("one\ntwo\n")
    cp = _cli(lib, "--stdin", str(data), "--", "wc", "-l")
    assert cp.returncode == 0, cp.stdout
    assert "stdout: same, 2 bytes compared" in cp.stdout


def _sh(lib, script, **kw):
    return run_check(CheckConfig(argv=["/bin/sh", "-c", script], lib=lib, **kw))


def test_nondeterministic_lines_are_excluded_and_the_rest_compared(lib):
    result = _sh(lib, "echo stable; echo $$; head -c8 /dev/urandom | od -An -tx1; echo end")
    assert result.verdict == 0
    stdout = next(o for o in result.comparisons[0].observables if o.name == "stdout")
    assert stdout.state == "same"
    assert stdout.excluded_lines == [2, 3]
    assert stdout.compared_bytes == len("stable\nend\n")


def test_nothing_deterministic_left_is_inconclusive_not_a_finding(lib):
    result = _sh(lib, "head -c 100 /dev/urandom")
    assert result.verdict == 3
    assert not any(c.differences for c in result.comparisons)


def test_varying_exit_status_is_inconclusive(lib):
    # 200 possible statuses: the two baseline runs agree by chance once in 200.
    result = _sh(lib, "exit $(( $(od -An -N2 -tu2 /dev/urandom) % 200 ))")
    assert result.verdict == 3
    assert result.comparisons[0].observables[0].state == "excluded"


def test_aslr_is_off_so_printed_pointers_are_stable(lib):
    code = "import ctypes; print(hex(id(object())), hex(ctypes.addressof(ctypes.c_int())))"
    result = run_check(CheckConfig(argv=[sys.executable, "-c", code], lib=lib))
    assert result.aslr_disabled
    assert result.verdict == 0
    stdout = next(o for o in result.comparisons[0].observables if o.name == "stdout")
    assert stdout.state == "same" and not stdout.excluded_lines


def test_every_run_timed_out_is_inconclusive_not_clean(lib):
    """Nothing was observed: a status that is only "killed at the timeout" proves nothing
    (this said clean, exit 0, before)."""
    result = _sh(lib, "sleep 5", timeout=0.3)
    assert result.verdict == 3
    assert all(r.status.timed_out for r in result.runs)
    assert any("every run timed out" in note for note in result.notes)
    cp = _cli(lib, "--timeout", "0.3", "--", "sleep", "5")
    assert cp.returncode == 3, cp.stdout + cp.stderr
    assert "verdict: inconclusive: every run timed out" in cp.stdout


def test_timeout_counts_as_status_when_output_was_seen(lib):
    result = _sh(lib, "echo started; sleep 5", timeout=0.5)
    assert all(r.status.timed_out for r in result.runs)
    assert result.verdict == 0


def test_output_never_written_is_reported_absent(lib, tmp_path):
    cp = _cli(lib, "--output", "never.txt", "--output", "outdir", "--", "true", cwd=tmp_path)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    assert "note: --output never.txt: absent in every run (no run wrote it)" in cp.stdout
    assert "note: --output outdir: absent in every run" in cp.stdout
    written = _cli(lib, "--output", "out.txt", "--", "sh", "-c", "echo x > out.txt", cwd=tmp_path)
    assert written.returncode == 0, written.stdout
    assert "absent" not in written.stdout and "out.txt: same, 2 bytes compared" in written.stdout


def test_progress_lines_on_stderr_unless_quiet(lib):
    cp = _cli(lib, "--", "true")
    assert cp.returncode == 0, cp.stderr
    lines = cp.stderr.splitlines()
    for label in ("A1", "B1", "A2"):
        assert any(ln.startswith(f"refmalloc check: run {label} started (") for ln in lines)
        assert any(ln.startswith(f"refmalloc check: run {label}: exit 0 in ") for ln in lines)
    assert "\x1b[K" not in cp.stderr  # no status line drawing when stderr is no terminal
    quiet = _cli(lib, "--quiet", "--", "true")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_usage_line_and_messages(lib):
    cp = _cli(lib, "--help")
    assert "Usage: refmalloc check [OPTIONS] -- COMMAND [ARGS]..." in cp.stdout
    assert "[default: 0xaa]" in cp.stdout and "FLOAT RANGE" not in cp.stdout
    assert "--use-after-free" in cp.stdout and "--free-pattern" not in cp.stdout
    bad = _cli(lib, "--timeout", "abc", "--", "true")
    assert bad.returncode == 2 and "'abc' is not a number of seconds" in bad.stderr
    zero = _cli(lib, "--timeout", "0", "--", "true")
    assert zero.returncode == 2 and "not a positive, finite number of seconds" in zero.stderr


# --- pieces -----------------------------------------------------------------


def test_compare_bytes_line_count_varies_is_excluded():
    res = compare_bytes("stdout", [b"a\n", b"a\nb\n"], [b"c\n"])
    assert res.state == "excluded"


def test_compare_bytes_pattern_detection():
    res = compare_bytes("f", [b"x\xaa\xaay", b"x\xaa\xaay"], [b"xUUy"], (0xAA, 0x55))
    assert res.state == "differs" and res.difference is not None
    assert res.difference.offset == 1 and res.difference.pattern_match == "raw"
    res = compare_bytes("f", [b"v=aa\n"] * 2, [b"v=55\n"], (0xAA, 0x55))
    assert res.difference is not None and res.difference.pattern_match == "hex"
    res = compare_bytes("f", [b"v=12\n"] * 2, [b"v=13\n"], (0xAA, 0x55))
    assert res.difference is not None and res.difference.pattern_match is None


def test_compare_bytes_difference_after_an_excluded_line():
    base = [b"t=1\nsame\nx=aa\n", b"t=22\nsame\nx=aa\n"]
    res = compare_bytes("stdout", base, [b"t=333\nsame\nx=55\n"], (0xAA, 0x55))
    assert res.state == "differs" and res.difference is not None
    assert res.excluded_lines == [1]
    assert res.difference.line == 3
    assert res.difference.offset == len("t=1\nsame\nx=")
    assert res.difference.other_offset == len("t=333\nsame\nx=")


def test_sites_log_merge_and_bisect(tmp_path):
    log1 = tmp_path / "sites.1"
    log2 = tmp_path / "sites.2"
    log1.write_text("# header\n2\t./p\t0x10\t-\n1\tlibc.so\t0x20\tstrdup\n")
    log2.write_text("# header\n3\t./p\t0x10\t-\n1\t./q\t0x30\tf\n")
    sites = merge_logs([log1, log2])
    assert [(s.module, s.offset, s.count) for s in sites] == [
        ("./p", 0x10, 5),
        ("./q", 0x30, 1),
        ("libc.so", 0x20, 1),
    ]
    assert parse_log(sites[0].line()) == [sites[0]]
    many = [Site("m", i) for i in range(100)]
    calls = []

    def positive(sets):
        calls.append(len(sets))
        return [Site("m", 37) in s for s in sets]

    assert bisect(many, positive) == [Site("m", 37)]
    assert len(calls) <= 7  # one pair of runs per halving

    def both(sets):  # needs 5 and 80 together
        return [Site("m", 5) in s and Site("m", 80) in s for s in sets]

    assert sorted(bisect(many, both)) == [Site("m", 5), Site("m", 80)]
