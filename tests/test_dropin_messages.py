"""Drop-in robustness (issue 11): what the library says and writes when a program
does what works under glibc: unloads a library that allocated, names a FIFO, repeats
an option, points a report at a dangling symbolic link."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from rmhelpers import assert_ok, refmalloc_lines


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
    env = {**os.environ, "REFMALLOC_LIB": lib}
    env.pop("LD_PRELOAD", None)
    cp = subprocess.run(
        [sys.executable, "-m", "pyalloc", "check", "--json", "--locate", "--", exe, so],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
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
