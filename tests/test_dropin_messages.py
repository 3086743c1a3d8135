"""Drop-in robustness (issue 11): what the library says and writes when a program
does what works under glibc: unloads a library that allocated, names a FIFO, repeats
an option, points a report at a dangling symbolic link."""

from __future__ import annotations

import json
import os
import shutil
import stat

from rmhelpers import assert_ok, refmalloc_lines, run_cli


def _dlsite(build) -> tuple[str, str]:
    """The dlsite program and its shared library (whose function allocates)."""
    return build("dlsite.c"), build("dlsite_lib.c", extra_flags=("-shared", "-fPIC"))


def _log_rows(path) -> list[list[str]]:
    return [ln.split("\t") for ln in path.read_text().splitlines() if not ln.startswith("#")]


def test_sites_log_names_a_site_of_a_library_unloaded_before_exit(build, run_prog, tmp_path):
    # The site's module and symbol strings belonged to the unloaded library: the log
    # is written at exit from copies (the base library crashed here, log empty).
    exe, so = _dlsite(build)
    log = tmp_path / "sites.log"
    cp = assert_ok(run_prog(exe, [so], options=f"sites={log}"))
    assert cp.stdout == "aa\n"
    rows = [r for r in _log_rows(log) if r[1] == so]
    assert [(r[0], r[3]) for r in rows] == [("1", "dlsite_fresh_byte")], log.read_text()


def test_check_locate_finds_a_site_in_a_library_unloaded_before_exit(lib, build):
    exe, so = _dlsite(build)
    cp = run_cli(lib, "check", "--json", "--locate", "--", exe, so)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    report = json.loads(cp.stdout)
    assert report["verdict"] == "dependence"
    [site] = report["locate"]["sites"]
    assert (site["module"], site["function"]) == (so, "dlsite_fresh_byte"), site


def test_sites_log_truncates_a_module_name_to_1024_bytes(build, run_prog, tmp_path):
    # Names are copied into a bounded arena: at most 1024 bytes of each.
    exe, so = _dlsite(build)
    deep = tmp_path
    for i in range(5):
        deep = deep / (f"{i}" * 230)
    deep.mkdir(parents=True)
    long_so = deep / "libdlsite.so"
    shutil.copyfile(so, long_so)
    assert len(str(long_so)) > 1024
    log = tmp_path / "sites.log"
    assert_ok(run_prog(exe, [long_so], options=f"sites={log}"))
    rows = [r for r in _log_rows(log) if r[3] == "dlsite_fresh_byte"]
    assert [r[1] for r in rows] == [str(long_so)[:1024]], log.read_text()


def test_site_list_naming_a_fifo_is_refused_at_once(build, run_prog, tmp_path):
    # Opening a FIFO for reading waits for a writer: the base library hung at start-up.
    fifo = tmp_path / "list.fifo"
    os.mkfifo(fifo)
    cp = assert_ok(run_prog(build("sites.c"), [], options=f"site_list={fifo}", timeout=10))
    assert cp.stdout.split() == ["78", "aa", "aa"]
    assert refmalloc_lines(cp.stderr) == [
        f"refmalloc: site_list: cannot read {fifo}: not a regular file (a FIFO, device or "
        "directory is never read); no site gets site_pattern"
    ]


def test_site_list_messages_say_why_it_cannot_be_read(build, run_prog, tmp_path):
    exe = build("sites.c")
    cp = assert_ok(run_prog(exe, [], options=f"site_list={tmp_path}"))
    assert f"site_list: cannot read {tmp_path}: not a regular file" in cp.stderr
    cp = assert_ok(run_prog(exe, [], options=f"site_list={tmp_path}/missing"))
    assert f"site_list: cannot read {tmp_path}/missing: no such file or directory;" in cp.stderr


def _exit_via_sh(run_prog, options, script="exec true"):
    """/bin/sh -c SCRIPT under the library: the exec'd program writes the files."""
    return run_prog("/bin/sh", ["-c", script], options=options)


def test_report_and_sites_at_a_dangling_symlink_say_it_is_a_link(run_prog, tmp_path):
    # O_EXCL refuses the link with EEXIST: the base library said "the file exists".
    for name in ("r.json", "s.log"):
        (tmp_path / name).symlink_to(tmp_path / f"nowhere-{name}")
    cp = _exit_via_sh(run_prog, f"report={tmp_path}/r.json,sites={tmp_path}/s.log")
    assert cp.returncode == 0, cp.stderr
    assert sorted(refmalloc_lines(cp.stderr)) == [
        f"refmalloc: report not written to {tmp_path}/r.json: "
        "it is a symbolic link (never followed)",
        f"refmalloc: sites log not written to {tmp_path}/s.log: "
        "it is a symbolic link (never followed)",
    ]
    assert not list(tmp_path.glob("nowhere-*"))


def test_existing_report_and_sites_files_are_named_as_existing(run_prog, tmp_path):
    (tmp_path / "r.json").write_text("mine")
    (tmp_path / "s.log").write_text("mine")
    cp = _exit_via_sh(run_prog, f"report={tmp_path}/r.json,sites={tmp_path}/s.log")
    exists = "the file exists (never overwritten)"
    assert sorted(refmalloc_lines(cp.stderr)) == [
        f"refmalloc: report not written to {tmp_path}/r.json: {exists}",
        f"refmalloc: sites log not written to {tmp_path}/s.log: {exists}",
    ]
    assert (tmp_path / "r.json").read_text() == (tmp_path / "s.log").read_text() == "mine"


def test_cannot_create_says_why(run_prog, tmp_path):
    (tmp_path / "file").write_text("")
    cp = _exit_via_sh(run_prog, f"report={tmp_path}/missing/r.json,sites={tmp_path}/file/s.log")
    assert sorted(refmalloc_lines(cp.stderr)) == [
        f"refmalloc: report not written to {tmp_path}/missing/r.json: "
        "cannot create it: no such file or directory",
        f"refmalloc: sites log not written to {tmp_path}/file/s.log: "
        "cannot create it: a path component is not a directory",
    ]


def test_report_and_sites_files_are_private_to_the_user(run_prog, tmp_path):
    # They reveal addresses of the program's memory: 0600 whatever the umask (was 0644).
    cp = _exit_via_sh(
        run_prog, f"report={tmp_path}/r.json,sites={tmp_path}/s.log", "umask 000; exec true"
    )
    assert cp.returncode == 0, cp.stderr
    for name in ("r.json", "s.log"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name


def _cli_run(lib, *args):
    return run_cli(lib, "run", *args)


def test_cli_run_reports_are_private_to_the_user(lib, tmp_path):
    for report in (tmp_path / "run.json", tmp_path / "each-%p.json"):
        cp = _cli_run(lib, "--report", str(report), "--", "sh", "-c", "umask 000; exec true")
        assert cp.returncode == 0, cp.stderr
    written = sorted(tmp_path.iterdir())
    assert len(written) == 2, written
    for path in written:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert json.loads((tmp_path / "run.json").read_text())["processes"]


def test_cli_run_refuses_a_dangling_symlink_as_a_link(lib, tmp_path):
    link = tmp_path / "run.json"
    link.symlink_to(tmp_path / "nowhere")
    cp = _cli_run(lib, "--report", str(link), "--", "true")
    assert cp.returncode == 2
    assert "is a symbolic link; refmalloc never follows one" in cp.stderr
    assert not (tmp_path / "nowhere").exists()


def test_cli_run_says_why_it_cannot_create_the_report(lib, tmp_path):
    sub = tmp_path / "sub"
    sub.mkdir()
    cp = _cli_run(lib, "--report", str(sub / "run.json"), "--", "rmdir", str(sub))
    assert cp.returncode == 0, cp.stderr
    assert (
        f"refmalloc: report not written to {sub}/run.json: cannot create it: "
        "No such file or directory"
    ) in cp.stderr
    kept = cp.stderr.rsplit("kept in ", 1)[1].strip()
    shutil.rmtree(kept)


def _probe(build, run_prog, options):
    cp = assert_ok(run_prog(build("probe.c"), [131072], options=options))
    return dict(ln.split(" ", 1) for ln in cp.stdout.splitlines() if " " in ln), cp


def test_bad_repeated_value_keeps_the_earlier_one_and_says_so(build, run_prog):
    # The base library kept 0x11 but said "using the default".
    v, cp = _probe(build, run_prog, "pattern=0x11,pattern=zz")
    assert (v["SMALL"], v["LARGE"]) == ("11", "11"), cp.stdout
    assert refmalloc_lines(cp.stderr) == [
        "refmalloc: REFMALLOC_OPTIONS: bad value 'zz' for 'pattern' "
        "(expected a byte, 0-255 or 0x00-0xff); keeping pattern=0x11"
    ]


def test_repeated_key_last_valid_value_wins(build, run_prog):
    v, cp = _probe(build, run_prog, "pattern=0x11,pattern=zz,pattern=0x22,free_pattern=off")
    assert (v["SMALL"], v["LARGE"]) == ("22", "22"), cp.stdout
    assert refmalloc_lines(cp.stderr)[0].endswith("; keeping pattern=0x11")
    v, cp = _probe(build, run_prog, "free_pattern=0x33,free_pattern=off,free_pattern=x")
    assert v["FREED"] == "01", cp.stdout  # off: the freed block keeps the program's bytes
    assert refmalloc_lines(cp.stderr) == [
        "refmalloc: REFMALLOC_OPTIONS: bad value 'x' for 'free_pattern' "
        "(expected a byte or 'off'); keeping free_pattern=off"
    ]


def test_bad_first_value_uses_the_default(build, run_prog):
    v, cp = _probe(build, run_prog, "pattern=zz,threshold=0")
    assert (v["SMALL"], v["AT-1"], v["AT"]) == ("aa", "small", "large"), cp.stdout
    lines = refmalloc_lines(cp.stderr)
    assert len(lines) == 2 and all(ln.endswith("; using the default") for ln in lines), lines


def test_madv_dontneed_on_a_large_block_reads_back_the_pattern(build, run_prog):
    # Documented behaviour (README, How it works), not a bug fix: a refpage block is a
    # private file mapping, so the dropped pages show the pattern file again, where
    # glibc's anonymous mmap blocks (and refmalloc's eager fallback) read zeros.
    exe = build("dontneed.c")
    assert assert_ok(run_prog(exe)).stdout == "aa 01 01\n"
    assert assert_ok(run_prog(exe, options="pattern=0x5c")).stdout == "5c 01 01\n"
    assert assert_ok(run_prog(exe, options="refpages=0")).stdout == "00 01 01\n"
    assert assert_ok(run_prog(exe, preload=False)).stdout == "00 01 01\n"
