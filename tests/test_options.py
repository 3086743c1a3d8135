"""Contract: REFMALLOC_OPTIONS parsing. Malformed value: exactly one stderr line
naming the key, default used. Unknown key: one line, ignored. Options are
ignored for setuid/setgid programs (AT_SECURE)."""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from rmhelpers import INCLUDE, PROGRAMS, assert_ok, clean_env, describe


def probe(build, run_prog, options, threshold=131072):
    cp = assert_ok(run_prog(build("probe.c"), [threshold], options=options))
    vals = dict(ln.split(" ", 1) for ln in cp.stdout.splitlines() if " " in ln)
    return vals, cp


def test_defaults_without_options(build, run_prog):
    v, cp = probe(build, run_prog, None)
    assert (v["SMALL"], v["LARGE"], v["REFPAT"]) == ("aa", "aa", "aa"), cp.stdout
    assert (v["AT-1"], v["AT"]) == ("small", "large"), cp.stdout
    assert v["FREED"] == "01", "free_pattern must be off by default"
    assert cp.stderr == ""


@pytest.mark.parametrize(
    "opt,val",
    [
        ("pattern=0x11", "11"),
        ("pattern=17", "11"),
        ("pattern=0xff", "ff"),
        ("pattern=0", "00"),
        ("pattern=0X5C", "5c"),
    ],
)
def test_pattern_option_honored(build, run_prog, opt, val):
    v, cp = probe(build, run_prog, opt)
    assert (v["SMALL"], v["LARGE"], v["REFPAT"]) == (val, val, val), cp.stdout
    assert cp.stderr == ""


@pytest.mark.parametrize(
    "opt,t",
    [
        ("threshold=64k", 65536),
        ("threshold=1m", 1 << 20),
        ("threshold=300000", 300000),
        ("threshold=2M", 2 << 20),
    ],
)
def test_threshold_option_honored(build, run_prog, opt, t):
    v, cp = probe(build, run_prog, opt, threshold=t)
    assert (v["AT-1"], v["AT"]) == ("small", "large"), cp.stdout
    assert cp.stderr == ""


def test_free_pattern_option_fills_freed_small_blocks(build, run_prog):
    v, cp = probe(build, run_prog, "free_pattern=0x22")
    assert v["FREED"] == "22", cp.stdout
    v, cp = probe(build, run_prog, "free_pattern=off")
    assert v["FREED"] == "01", cp.stdout


def test_several_options_together(build, run_prog):
    v, cp = probe(
        build, run_prog, "pattern=0x33,threshold=64k,free_pattern=0x44,cache=0", threshold=65536
    )
    assert (v["SMALL"], v["LARGE"], v["AT-1"], v["AT"], v["FREED"]) == (
        "33",
        "33",
        "small",
        "large",
        "44",
    ), cp.stdout
    assert cp.stderr == ""


def _one_message(cp, key):
    lines = cp.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one stderr line\n{describe(cp)}"
    assert lines[0].startswith("refmalloc: REFMALLOC_OPTIONS:"), describe(cp)
    assert key in lines[0], describe(cp)


@pytest.mark.parametrize(
    "opt,key",
    [
        ("threshold=abc", "threshold"),
        ("threshold=", "threshold"),
        ("threshold=12q", "threshold"),
        ("pattern=0x1ff", "pattern"),
        ("pattern=256", "pattern"),
        ("pattern=-1", "pattern"),
        ("pattern=zz", "pattern"),
        ("refpages=2", "refpages"),
        ("cache=lots", "cache"),
        ("max_mappings=x", "max_mappings"),
    ],
)
def test_malformed_value_one_line_naming_key_and_default_used(build, run_prog, opt, key):
    v, cp = probe(build, run_prog, opt)
    _one_message(cp, key)
    assert (v["SMALL"], v["LARGE"], v["REFPAT"]) == ("aa", "aa", "aa"), cp.stdout
    assert (v["AT-1"], v["AT"]) == ("small", "large"), cp.stdout


def test_malformed_value_does_not_spoil_other_options(build, run_prog):
    v, cp = probe(build, run_prog, "pattern=0x1ff,threshold=64k", threshold=65536)
    _one_message(cp, "pattern")
    assert v["SMALL"] == "aa" and (v["AT-1"], v["AT"]) == ("small", "large"), cp.stdout


def test_unknown_key_one_line_and_ignored(build, run_prog):
    v, cp = probe(build, run_prog, "bogus_key=1,pattern=0x11")
    _one_message(cp, "bogus_key")
    assert v["SMALL"] == "11", cp.stdout


# ---- AT_SECURE: options ignored for setuid / setgid programs -------------

NOBODY = 65534


def _suid_capable_dir():
    """A directory on a filesystem not mounted nosuid, traversable by nobody."""
    for cand in ("/var/tmp", "/tmp", str(Path(__file__).resolve().parent)):
        if not os.path.isdir(cand):
            continue
        out = subprocess.run(
            ["findmnt", "-n", "-o", "OPTIONS", "-T", cand], capture_output=True, text=True
        )
        if out.returncode == 0 and "nosuid" not in out.stdout.split(","):
            return cand
    return None


@pytest.fixture(scope="module")
def setuid_probe(lib):
    if os.geteuid() != 0:
        pytest.skip("needs root to create a setuid-root program and run it as another user")
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is required for the AT_SECURE test"
    base = _suid_capable_dir()
    assert base, "no filesystem without nosuid found for the AT_SECURE test"
    d = Path(tempfile.mkdtemp(prefix="refmalloc-suid-", dir=base))
    try:
        os.chmod(d, 0o755)
        shutil.copy(lib, d / "librefmalloc.so")
        os.chmod(d / "librefmalloc.so", 0o755)
        # Linked against refmalloc (LD_PRELOAD is not honored for setuid programs).
        exe = d / "probe-plain"
        subprocess.run(
            [
                "gcc",
                "-std=gnu11",
                "-O1",
                "-fno-builtin",
                f"-I{INCLUDE}",
                f"-I{PROGRAMS}",
                "-o",
                str(exe),
                str(PROGRAMS / "probe.c"),
                f"-L{d}",
                "-l:librefmalloc.so",
                f"-Wl,-rpath,{d}",
                "-ldl",
            ],
            check=True,
        )
        os.chmod(exe, 0o755)
        suid = d / "probe-suid"
        sgid = d / "probe-sgid"
        for copy, mode in ((suid, 0o4755), (sgid, 0o2755)):
            shutil.copy(exe, copy)
            os.chown(copy, 0, 0)
            os.chmod(copy, mode)
        yield setpriv, exe, suid, sgid
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _run_as_nobody(setpriv, exe, options):
    env = clean_env({"REFMALLOC_OPTIONS": options})
    cp = subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(exe), "131072"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert cp.returncode == 0, describe(cp)
    return dict(ln.split(" ", 1) for ln in cp.stdout.splitlines() if " " in ln), cp


def test_options_honored_for_ordinary_program_run_by_nobody(setuid_probe):
    """Control for the setuid test: the same linked program, not setuid, run by
    the same user with the same options, does honor them."""
    setpriv, exe, _, _ = setuid_probe
    v, cp = _run_as_nobody(setpriv, exe, "pattern=0x11,threshold=1m,free_pattern=0x22")
    assert v["SECURE"] == "0", cp.stdout
    assert (v["SMALL"], v["LARGE"], v["REFPAT"]) == ("11", "11", "11"), cp.stdout
    assert (v["AT-1"], v["AT"]) == ("small", "small"), cp.stdout  # 128k is below 1m
    assert v["FREED"] == "22", cp.stdout


@pytest.mark.parametrize("which", ["setuid", "setgid"])
def test_options_ignored_for_setuid_and_setgid_programs(setuid_probe, which):
    setpriv, _, suid, sgid = setuid_probe
    exe = suid if which == "setuid" else sgid
    v, cp = _run_as_nobody(setpriv, exe, "pattern=0x11,threshold=1m,free_pattern=0x22")
    assert v["SECURE"] == "1", f"AT_SECURE not set: the {which} test is not valid\n{cp.stdout}"
    assert v["REFPAT"] == "aa", cp.stdout  # refmalloc is loaded (linked)
    assert (v["SMALL"], v["LARGE"]) == ("aa", "aa"), cp.stdout
    assert (v["AT-1"], v["AT"]) == ("small", "large"), cp.stdout  # default 128k threshold
    assert v["FREED"] == "01", cp.stdout
    # and nothing of the options was parsed (no complaint either)
    assert "pattern" not in cp.stderr and "threshold" not in cp.stderr, cp.stderr


def test_setuid_program_report_option_ignored(setuid_probe, tmp_path):
    setpriv, _, suid, _ = setuid_probe
    d = Path(tempfile.mkdtemp(prefix="refmalloc-rep-", dir="/tmp"))
    try:
        os.chmod(d, 0o777)
        _run_as_nobody(setpriv, suid, f"report={d}/r.json")
        assert os.listdir(d) == [], "a setuid program wrote a report chosen by the caller"
    finally:
        shutil.rmtree(d, ignore_errors=True)
