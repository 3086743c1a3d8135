"""Security (issue 6), beyond tests/test_memfd.py (seals, CLOEXEC of the
memfd), tests/test_options.py (setuid/setgid ignore the options) and
tests/test_stats.py (report: no overwrite, no symlink): no descriptor of
refmalloc's survives exec, the memfd cannot be written through any route,
and the report is never written through a symlink planted for the pid, into a
FIFO, or over a hard link."""

import os
import shlex
import stat
import subprocess

from rmhelpers import assert_ok, clean_env, describe, refmalloc_lines


def test_exec_leaves_no_refmalloc_descriptor(rbuild, run_prog, tmp_path):
    """After large blocks, refmalloc_query (pagemap) and a report written
    through the API, an exec'd program holds nothing but 0, 1, 2."""
    cp = assert_ok(run_prog(rbuild("sec.c"), ["execfds", tmp_path / "r.json"]))
    assert "OK no inherited descriptors" in cp.stdout and "OK execfds" in cp.stdout
    assert (tmp_path / "r.json").is_file()


def test_exec_leaves_no_descriptor_with_report_option(rbuild, run_prog, tmp_path):
    cp = assert_ok(
        run_prog(rbuild("sec.c"), ["execfds"], options=f"report={tmp_path}/x-%p.json,verbose=1")
    )
    assert "OK execfds" in cp.stdout


def test_memfd_cannot_be_written_by_any_route(rbuild, run_prog):
    cp = assert_ok(run_prog(rbuild("sec.c"), ["sharedmap"]))
    assert "OK sharedmap" in cp.stdout


def _sh_exec(lib, tmp_path, prelude, exe, report):
    """Run `sh -c 'PRELUDE; exec exe'`: the exec keeps the shell's pid, so
    PRELUDE can plant files named after the pid the program's %p expands to.
    Only the exec'd program runs under refmalloc."""
    script = f"{prelude}; exec env LD_PRELOAD={shlex.quote(lib)} {shlex.quote(exe)} work"
    env = clean_env({"REFMALLOC_OPTIONS": f"report={report}", "D": str(tmp_path)})
    return subprocess.run(
        ["/bin/sh", "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


def test_report_pid_path_symlink_planted_before_exec_not_followed(rbuild, lib, tmp_path):
    exe = rbuild("faults.c")
    target = tmp_path / "victim"
    target.write_text("VICTIM\n")
    dangling = tmp_path / "created-by-symlink"
    cp = _sh_exec(
        lib,
        tmp_path,
        f'ln -s {target} "$D/r-$$.json"',
        exe,
        f"{tmp_path}/r-%p.json",
    )
    assert cp.returncode == 3, describe(cp)
    assert target.read_text() == "VICTIM\n"
    assert any("report" in m for m in refmalloc_lines(cp.stderr)), describe(cp)
    cp = _sh_exec(lib, tmp_path, f'ln -s {dangling} "$D/s-$$.json"', exe, f"{tmp_path}/s-%p.json")
    assert cp.returncode == 3, describe(cp)
    assert not dangling.exists(), "the report was created through a dangling symlink"


def test_report_never_written_into_fifo_and_never_blocks(rbuild, lib, tmp_path):
    exe = rbuild("faults.c")
    cp = _sh_exec(lib, tmp_path, 'mkfifo "$D/r-$$.json"', exe, f"{tmp_path}/r-%p.json")
    assert cp.returncode == 3, describe(cp)  # a blocking open would time out
    fifos = [p for p in tmp_path.iterdir() if stat.S_ISFIFO(p.lstat().st_mode)]
    assert len(fifos) == 1
    assert any("report" in m for m in refmalloc_lines(cp.stderr)), describe(cp)


def test_report_never_written_over_hard_link(rbuild, lib, tmp_path):
    exe = rbuild("faults.c")
    victim = tmp_path / "victim"
    victim.write_text("VICTIM\n")
    cp = _sh_exec(lib, tmp_path, f'ln {victim} "$D/r-$$.json"', exe, f"{tmp_path}/r-%p.json")
    assert cp.returncode == 3, describe(cp)
    assert victim.read_text() == "VICTIM\n"
    assert os.stat(victim).st_nlink == 2


def test_report_created_private_to_the_user(rbuild, lib, tmp_path):
    """A report holds addresses of the program's memory: not world-writable,
    owned by the user who ran the program."""
    exe = rbuild("faults.c")
    cp = _sh_exec(lib, tmp_path, "umask 000", exe, f"{tmp_path}/r-%p.json")
    assert cp.returncode == 3, describe(cp)
    reports = list(tmp_path.glob("r-*.json"))
    assert len(reports) == 1, describe(cp)
    st = reports[0].stat()
    assert st.st_uid == os.getuid()
    assert not st.st_mode & stat.S_IWOTH, oct(st.st_mode)
