"""The ``refmalloc`` command and the pyalloc helpers behind it.

Parsing and environment building are tested in-process; ``refmalloc run`` is tested as
a user runs it, in a subprocess, with the real library preloaded into real programs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from rmhelpers import REPO, STACKED

import pyalloc
from pyalloc.cli import main
from pyalloc.inject import child_env, is_python_command, preload_value, split_preload
from pyalloc.options import (
    KNOWN_KEYS,
    format_byte,
    format_options,
    merge_options,
    parse_byte,
    parse_options,
    parse_size,
)

TIMEOUT = 120

# Allocates blocks of the sizes given on the command line with the C library's malloc,
# through the preloaded allocator, and prints the distinct byte values in each.
MALLOC_PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
for size in map(int, sys.argv[1:]):
    block = libc.malloc(size)
    assert block, size
    print(size, " ".join(f"{b:02x}" for b in sorted(set(ctypes.string_at(block, size)))))
"""


def refmalloc(
    *args: str,
    env: dict[str, str] | None = None,
    input: bytes | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run the refmalloc command as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "pyalloc", *args],
        env=env,
        input=input,
        cwd=cwd,
        capture_output=True,
        timeout=TIMEOUT,
        check=False,
    )


def environ(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def clean_env() -> dict[str, str]:
    """The test process's environment without any refmalloc settings of its own."""
    return environ(LD_PRELOAD=None, REFMALLOC_OPTIONS=None, PYTHONMALLOC=None)


def libc_path() -> str:
    """Path of the C library mapped into this process: a harmless thing to preload."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and os.path.basename(fields[5]).startswith("libc.so"):
            return fields[5]
    pytest.fail("libc not found in /proc/self/maps")


def probe(*args: str, sizes: tuple[int, ...]) -> dict[int, str]:
    result = refmalloc(
        "run", *args, "--", sys.executable, "-c", MALLOC_PROBE, *map(str, sizes), env=clean_env()
    )
    assert result.returncode == 0, result.stderr.decode()
    lines = result.stdout.decode().splitlines()
    return {int(size): values for size, values in (line.split(" ", 1) for line in lines)}


# --- option values -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4096", 4096),
        ("0", 0),
        ("64k", 64 << 10),
        ("64K", 64 << 10),
        ("2M", 2 << 20),
        ("2m", 2 << 20),
        ("1g", 1 << 30),
        ("1t", 1 << 40),
        (" 128k ", 128 << 10),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "k", "12x", "1.5m", "-1", "0x10", "1 k", "64kb", "1e6"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


def test_parse_size_rejects_overflow() -> None:
    with pytest.raises(ValueError, match="larger than"):
        parse_size("16777216t")


@given(st.integers(0, 2**20), st.sampled_from(["", "k", "m", "g", "t", "K", "M", "G", "T"]))
def test_parse_size_units(number: int, suffix: str) -> None:
    shift = 10 * " kmgt".index(suffix.lower() or " ")
    assert parse_size(f"{number}{suffix}") == number << shift


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0xaa", 0xAA), ("0XAA", 0xAA), ("0x0", 0), ("0xff", 255), ("170", 170), ("0", 0)],
)
def test_parse_byte(text: str, expected: int) -> None:
    assert parse_byte(text) == expected


@pytest.mark.parametrize("text", ["256", "0x100", "0x1ff"])
def test_parse_byte_out_of_range(text: str) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_byte(text)


@pytest.mark.parametrize("text", ["", "aa", "0x", "-1", "0xg0", "1.0", "off"])
def test_parse_byte_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="invalid byte"):
        parse_byte(text)


@given(st.integers(0, 255))
def test_byte_round_trip(value: int) -> None:
    assert parse_byte(format_byte(value)) == value
    assert parse_byte(str(value)) == value
    assert parse_byte(hex(value).upper().replace("X", "x")) == value


# --- REFMALLOC_OPTIONS strings -------------------------------------------------------


def test_format_options() -> None:
    text = format_options(
        {"pattern": 0x5C, "free_pattern": "off", "threshold": 65536, "report": None, "verbose": 1}
    )
    assert text == "pattern=0x5c,free_pattern=off,threshold=65536,verbose=1"


def test_format_options_rejects_comma() -> None:
    with pytest.raises(ValueError, match="comma"):
        format_options({"report": "/tmp/a,b.json"})


def test_merge_options_keeps_existing_entries() -> None:
    existing = "cache=0,pattern=0x11,,junk,threshold=1m"
    merged = merge_options(existing, {"pattern": 0x22, "verbose": None})
    assert merged == "cache=0,junk,threshold=1m,pattern=0x22"
    assert parse_options(merged) == [
        ("cache", "0"),
        ("junk", None),
        ("threshold", "1m"),
        ("pattern", "0x22"),
    ]
    assert merge_options(None, {}) == ""
    assert merge_options("cache=0", {"pattern": None}) == "cache=0"


# --- environment ---------------------------------------------------------------------


def test_preload_value_keeps_existing_entries(tmp_path: Path) -> None:
    lib = str(tmp_path / "librefmalloc.so")
    Path(lib).touch()
    assert preload_value(lib, None) == lib
    assert preload_value(lib, "") == lib
    assert preload_value(lib, "/a/libjemalloc.so.2 /b/x.so:/c/y.so") == (
        f"{lib}:/a/libjemalloc.so.2:/b/x.so:/c/y.so"
    )
    # refmalloc already in the list moves to the front instead of appearing twice.
    assert preload_value(lib, f"/a/libjemalloc.so.2:{lib}") == f"{lib}:/a/libjemalloc.so.2"
    assert split_preload(" a  b::c ") == ["a", "b", "c"]


def test_preload_value_rejects_unusable_path() -> None:
    with pytest.raises(ValueError, match="space or a colon"):
        preload_value("/my dir/librefmalloc.so", None)


def test_child_env() -> None:
    base = {"PATH": "/bin", "LD_PRELOAD": "/x/libmimalloc.so", "REFMALLOC_OPTIONS": "cache=0"}
    env = child_env({"pattern": 0x5C, "threshold": None}, base=base, lib="/r/librefmalloc.so")
    assert env == {
        "PATH": "/bin",
        "LD_PRELOAD": "/r/librefmalloc.so:/x/libmimalloc.so",
        "REFMALLOC_OPTIONS": "cache=0,pattern=0x5c",
    }
    assert base["LD_PRELOAD"] == "/x/libmimalloc.so"
    env = child_env({}, base={"REFMALLOC_OPTIONS": ""}, lib="/r/librefmalloc.so")
    assert env == {"LD_PRELOAD": "/r/librefmalloc.so"}


# --- lib-path and the library lookup -------------------------------------------------


def test_lib_path_prints_existing_absolute_path() -> None:
    result = refmalloc("lib-path")
    assert result.returncode == 0, result.stderr.decode()
    path = result.stdout.decode().strip()
    assert os.path.isabs(path)
    assert os.path.isfile(path)
    assert os.path.basename(path) == "librefmalloc.so"
    assert path == pyalloc.lib_path()


def test_console_script() -> None:
    script = Path(sys.executable).with_name("refmalloc")
    if not script.exists():
        pytest.fail(f"console script not installed next to {sys.executable}: pip install .")
    result = subprocess.run(
        [str(script), "lib-path"], capture_output=True, timeout=TIMEOUT, check=False
    )
    assert result.returncode == 0, result.stderr.decode()
    assert os.path.isfile(result.stdout.decode().strip())


def test_lib_path_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "librefmalloc.so"
    lib.write_bytes(b"")
    monkeypatch.setenv("REFMALLOC_LIB", str(lib))
    assert pyalloc.lib_path() == str(lib)
    monkeypatch.setenv("REFMALLOC_LIB", str(tmp_path / "missing.so"))
    with pytest.raises(FileNotFoundError, match="REFMALLOC_LIB"):
        pyalloc.lib_path()


def test_lib_path_missing_env_file_is_an_error(tmp_path: Path) -> None:
    result = refmalloc("lib-path", env=environ(REFMALLOC_LIB=str(tmp_path / "none.so")))
    assert result.returncode == 1
    assert b"REFMALLOC_LIB" in result.stderr


def test_run_without_library_exits_125(tmp_path: Path) -> None:
    result = refmalloc("run", "--", "true", env=environ(REFMALLOC_LIB=str(tmp_path / "none.so")))
    assert result.returncode == 125
    assert result.stderr.decode().startswith("refmalloc: ")


# --- usage errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pattern", "0x100"], "Invalid value for '--pattern'"),
        (["--pattern", "zz"], "Invalid value for '--pattern'"),
        (["--free-pattern", "256"], "Invalid value for '--free-pattern'"),
        (["--threshold", "12x"], "Invalid value for '--threshold'"),
        (["--threshold", "-1"], "Invalid value for '--threshold'"),
        (["--threshold", "0"], "expected a size between 1 and 1t"),
        (["--threshold", "2t"], "expected a size between 1 and 1t"),
        (["--cache", "1.5m"], "Invalid value for '--cache'"),
        (["--max-chunk", "4k"], "expected a size between 64k and 1g"),
        (["--reserve", "512m"], "expected a size between 1g and 64t"),
        (["--max-mappings", "15"], "Invalid value for '--max-mappings'"),
        (["--max-mappings", "many"], "Invalid value for '--max-mappings'"),
        (["--backend", "nosuchalloc"], "unknown backend 'nosuchalloc'"),
        (["--backend", "./nosuch.so"], "backend './nosuch.so': no such file"),
        (["--backend", "/etc/hostname"], "not an ELF shared object"),
        (["--backend", "/etc"], "not a regular file"),
    ],
)
def test_run_bad_option_values(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["run", *args, "--", "true"])
    assert result.exit_code == 2
    assert message in result.output


def test_run_without_command_is_a_usage_error() -> None:
    result = refmalloc("run")
    assert result.returncode == 2
    assert b"Missing argument" in result.stderr
    result = refmalloc("run", "--pattern", "0x11", "--")
    assert result.returncode == 2


def test_run_refuses_existing_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("keep me")
    result = refmalloc("run", "--report", str(report), "--", "true")
    assert result.returncode == 2
    assert b"Invalid value for '--report'" in result.stderr
    assert b"already exists" in result.stderr
    assert report.read_text() == "keep me"


def test_run_report_directory_must_exist(tmp_path: Path) -> None:
    result = refmalloc("run", "--report", str(tmp_path / "no" / "r.json"), "--", "true")
    assert result.returncode == 2
    assert b"does not exist" in result.stderr


def test_help_and_version() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["--help"])
    assert result.exit_code == 0
    assert "run" in result.output and "lib-path" in result.output
    result = runner.invoke(main, ["run", "--help"])
    assert result.exit_code == 0
    for key in KNOWN_KEYS:
        assert f"--{key.replace('_', '-')}" in result.output, key
    for option in ("--backend", "--python-malloc", "--no-python-malloc", "--summary"):
        assert option in result.output
    result = runner.invoke(main, ["report", "--help"])
    assert result.exit_code == 0
    assert "--json" in result.output and "--plot" in result.output
    result = runner.invoke(main, ["--version"])
    assert result.exit_code == 0
    assert pyalloc.__version__ in result.output


# --- running programs ----------------------------------------------------------------


@pytest.mark.parametrize("status", [0, 1, 7, 255])
def test_run_passes_exit_status(status: int) -> None:
    result = refmalloc("run", "--", "sh", "-c", f"exit {status}", env=clean_env())
    assert result.returncode == status, result.stderr.decode()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL, signal.SIGSEGV])
def test_run_death_by_signal_is_128_plus_n(sig: signal.Signals) -> None:
    result = refmalloc("run", "--", "sh", "-c", f"kill -{sig.name[3:]} $$", env=clean_env())
    assert result.returncode == 128 + sig.value, result.stderr.decode()


def test_run_forwards_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pyalloc", "run", "--", "sh", "-c", "echo ready; exec sleep 60"],
        stdout=subprocess.PIPE,
        env=clean_env(),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()


def test_run_command_not_found() -> None:
    result = refmalloc("run", "--", "refmalloc-no-such-command-xyz", env=clean_env())
    assert result.returncode == 127
    assert b"refmalloc: command not found: refmalloc-no-such-command-xyz" in result.stderr
    result = refmalloc("run", "--summary", "--", "refmalloc-no-such-command-xyz", env=clean_env())
    assert result.returncode == 127
    assert result.stderr == b"refmalloc: command not found: refmalloc-no-such-command-xyz\n"


def test_run_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o644)
    result = refmalloc("run", "--", str(script), env=clean_env())
    assert result.returncode == 126
    assert result.stderr.startswith(b"refmalloc: cannot execute")
    assert b"permission denied" in result.stderr
    result = refmalloc("run", "--", str(tmp_path), env=clean_env())
    assert result.returncode == 126
    assert result.stderr == f"refmalloc: cannot execute {tmp_path}: is a directory\n".encode()


def test_run_report_naming_a_directory_says_so(tmp_path: Path) -> None:
    result = refmalloc("run", "--report", str(tmp_path), "--", "true")
    assert result.returncode == 2
    assert b"is a directory" in result.stderr and b"%p" in result.stderr
    assert b"already exists" not in result.stderr


def test_run_uses_the_commands_own_streams() -> None:
    result = refmalloc(
        "run", "--", "sh", "-c", "cat; echo to-stderr >&2", input=b"abc\n", env=clean_env()
    )
    assert result.returncode == 0
    assert result.stdout == b"abc\n"
    assert result.stderr == b"to-stderr\n"


def test_run_sets_preload_and_keeps_existing_entries() -> None:
    libc = libc_path()
    env = environ(LD_PRELOAD=libc, REFMALLOC_OPTIONS="cache=0,pattern=0x11")
    result = refmalloc(
        "run",
        "--pattern",
        "0x22",
        "--threshold",
        "2M",
        "--",
        "sh",
        "-c",
        'printf "%s\\n%s\\n" "$LD_PRELOAD" "$REFMALLOC_OPTIONS"',
        env=env,
    )
    assert result.returncode == 0, result.stderr.decode()
    preload, options = result.stdout.decode().splitlines()
    assert preload.split(":") == [pyalloc.lib_path(), libc]
    assert options == "cache=0,pattern=0x22,threshold=2097152"


def test_run_program_sees_the_pattern() -> None:
    """The point of it all: memory from malloc holds the pattern, small and large."""
    sizes = (64, 1000, 300 << 10, 4 << 20)
    assert probe(sizes=sizes) == dict.fromkeys(sizes, "aa")
    assert probe("--pattern", "0x5c", sizes=sizes) == dict.fromkeys(sizes, "5c")
    assert probe("--pattern", "0", "--threshold", "64k", sizes=sizes) == dict.fromkeys(sizes, "00")


def test_run_writes_report(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    result = refmalloc(
        "run",
        "--pattern",
        "0x5c",
        "--threshold",
        "64k",
        "--report",
        "report.json",
        "--",
        sys.executable,
        "-c",
        "pass",
        env=clean_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    data = json.loads(report.read_text())
    assert data["refmalloc_run"] == 1
    assert data["command"] == [sys.executable, "-c", "pass"]
    assert data["exit_status"] == 0
    (proc,) = data["processes"]
    assert proc["pid"] == data["pid"]
    assert proc["pattern"] == 0x5C
    assert proc["threshold"] == 64 << 10
    assert isinstance(proc["stats"], dict)
    assert set(proc["memory"]) == {"anonymous", "pss"}
    assert not [p for p in tmp_path.iterdir() if p.name != "report.json"]


# --- all options, backends, PYTHONMALLOC ---------------------------------------------

SHOW_ENV = 'printf "%s\\n%s\\n%s\\n" "$LD_PRELOAD" "$REFMALLOC_OPTIONS" "${PYTHONMALLOC-unset}"'


def show_env(*args: str, env: dict[str, str] | None = None) -> tuple[list[str], str, str]:
    result = refmalloc("run", *args, "--", "sh", "-c", SHOW_ENV, env=env or clean_env())
    assert result.returncode == 0, result.stderr.decode()
    preload, options, pythonmalloc = result.stdout.decode().splitlines()
    return preload.split(":"), options, pythonmalloc


def test_run_sets_every_option() -> None:
    preload, options, pythonmalloc = show_env(
        "--pattern=170", "--free-pattern=off", "--threshold=1m", "--cache=0",
        "--max-mappings=100", "--reserve=2g", "--no-refpages", "--max-chunk=128k", "-vv",
    )  # fmt: skip
    assert preload == [pyalloc.lib_path()]
    assert options == (
        "pattern=0xaa,free_pattern=off,threshold=1048576,cache=0,max_mappings=100,"
        "reserve=2147483648,refpages=0,max_chunk=131072,verbose=2"
    )
    assert pythonmalloc == "unset"  # sh is not Python
    assert show_env("--refpages", "--free-pattern", "0x11")[1] == "free_pattern=0x11,refpages=1"


def test_run_every_option_is_accepted_by_the_library() -> None:
    """The values the CLI writes are ones the library takes without a complaint."""
    result = refmalloc(
        "run", "--pattern", "0x33", "--free-pattern", "0x44", "--threshold", "200k",
        "--cache", "1m", "--max-mappings", "1000", "--reserve", "4g", "--refpages",
        "--max-chunk", "1m", "--", sys.executable, "-c", MALLOC_PROBE, "100", "300000",
        env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""
    assert result.stdout.decode().split() == ["100", "33", "300000", "33"]


@pytest.mark.parametrize("name", ["jemalloc", "mimalloc", "tcmalloc"])
def test_run_backend_is_preloaded_after_refmalloc(name: str) -> None:
    path, package = STACKED[name]
    # An allocator already preloaded is replaced by the one asked for.
    other = next(p for n, (p, _) in STACKED.items() if n != name)
    env = environ(LD_PRELOAD=f"{other}:{libc_path()}", REFMALLOC_OPTIONS=None)
    preload, _, _ = show_env("--backend", name, env=env)
    assert preload == [pyalloc.lib_path(), path, libc_path()], package
    # It really serves the program, and the pattern is still there.
    result = refmalloc(
        "run", "--backend", name, "--pattern", "0x5c", "--", sys.executable, "-c",
        MALLOC_PROBE + "print(open('/proc/self/maps').read())", "24", "5000", "1000000",
        env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    out = result.stdout.decode()
    assert out.splitlines()[:3] == ["24 5c", "5000 5c", "1000000 5c"]
    assert os.path.basename(path) in out and "librefmalloc.so" in out


def test_run_backend_glibc_and_path() -> None:
    jemalloc = STACKED["jemalloc"][0]
    env = environ(LD_PRELOAD=f"{jemalloc}:{libc_path()}", REFMALLOC_OPTIONS=None)
    assert show_env("--backend", "glibc", env=env)[0] == [pyalloc.lib_path(), libc_path()]
    preload = show_env("--backend", STACKED["mimalloc"][0], env=env)[0]
    assert preload == [pyalloc.lib_path(), STACKED["mimalloc"][0], libc_path()]


def test_run_backend_path_must_be_preloadable(tmp_path: Path) -> None:
    odd = tmp_path / "my lib.so"
    shutil.copy(STACKED["jemalloc"][0], odd)
    result = CliRunner().invoke(main, ["run", "--backend", str(odd), "--", "true"])
    assert result.exit_code == 2
    assert "cannot hold a path containing a space" in result.output


def test_run_backend_missing_names_the_debian_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pyalloc import backends

    monkeypatch.setattr(backends, "library_dirs", lambda: [tmp_path])
    monkeypatch.setattr(backends, "_ldconfig_lookup", lambda soname: None)
    for name, (path, package) in STACKED.items():
        result = CliRunner().invoke(main, ["run", "--backend", name, "--", "true"])
        assert result.exit_code == 2
        assert f"{os.path.basename(path)} not found" in result.output
        assert f"Debian package {package} (apt-get install {package})" in result.output


def test_is_python_command(tmp_path: Path) -> None:
    script = tmp_path / "tool"
    script.write_text("#!/usr/bin/env python3\nprint(1)\n")
    script.chmod(0o755)
    direct = tmp_path / "tool2"
    direct.write_text(f"#!{sys.executable} -E\n")
    shell = tmp_path / "tool3"
    shell.write_text("#!/bin/sh\n")
    assert is_python_command([sys.executable, "-c", "pass"])
    assert is_python_command(["python3.11"])
    assert is_python_command(["pypy3"])
    assert is_python_command([str(script)])
    assert is_python_command([str(direct)])
    assert is_python_command(["tool"], path=str(tmp_path))
    assert not is_python_command([str(shell)])
    assert not is_python_command(["sh", "-c", "python3"])
    assert not is_python_command(["no-such-command-xyz"])
    assert not is_python_command([])


def test_run_python_malloc() -> None:
    code = "import os; print(os.environ.get('PYTHONMALLOC'))"
    for args, expected in [
        ((), "malloc"),
        (("--no-python-malloc",), "None"),
        (("--python-malloc",), "malloc"),
    ]:
        result = refmalloc("run", *args, "--", sys.executable, "-c", code, env=clean_env())
        assert result.returncode == 0, result.stderr.decode()
        assert result.stdout.decode().strip() == expected, args
    assert show_env("--python-malloc")[2] == "malloc"


# --- reports of several processes, --summary ------------------------------------------

FORKING = """
import os, subprocess, sys
pid = os.fork()
if pid == 0:
    sys.exit(0)
os.waitpid(pid, 0)
subprocess.run([sys.executable, "-c", "import sys; sys.exit(0)"], check=True)
print(os.getpid(), pid)
"""


def test_run_report_of_a_forking_program(tmp_path: Path) -> None:
    report = tmp_path / "run.json"
    result = refmalloc(
        "run", "--report", str(report), "--", sys.executable, "-c", FORKING, env=clean_env()
    )
    assert result.returncode == 0, result.stderr.decode()
    top, forked = map(int, result.stdout.split())
    data = json.loads(report.read_text())
    pids = [p["pid"] for p in data["processes"]]
    assert len(pids) == 3, pids  # the program, its forked child, the executed child
    assert pids[0] == top == data["pid"]
    assert forked in pids
    # %p: one file per process instead.
    each = tmp_path / "each-%p.json"
    result = refmalloc(
        "run", "--report", str(each), "--", sys.executable, "-c", FORKING, env=clean_env()
    )
    assert result.returncode == 0, result.stderr.decode()
    top, forked = map(int, result.stdout.split())
    files = sorted(p.name for p in tmp_path.glob("each-*.json"))
    assert len(files) == 3 and f"each-{top}.json" in files and f"each-{forked}.json" in files
    assert json.loads((tmp_path / f"each-{top}.json").read_text())["pid"] == top


def test_run_summary(tmp_path: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "a = np.empty(16 << 20, np.uint8); a[: 1 << 20] = 1\n"
        "print('out'); print('err', file=sys.stderr); sys.exit(3)"
    )
    result = refmalloc(
        "run", "--summary", "--pattern", "0x5c", "--", sys.executable, "-c", code,
        env=clean_env(), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 3
    assert result.stdout == b"out\n"
    err = result.stderr.decode()
    # Named by its program (the base name of the interpreter, then its arguments).
    exe = os.path.basename(os.path.realpath(sys.executable))
    assert err.startswith(f"err\nrefmalloc summary: {exe} -c 'import sys, numpy"), err
    assert re.search(r"\u2026 \(pid \d+\)\n", err), err
    for label in (
        "pattern                   0x5c (free pattern off)",
        "small blocks",
        "refpage blocks",
        "peak live refpage bytes   ",
        "refpage pages written",
        "eager memset would write",
        "memory at exit            anonymous ",
        "fallbacks                 none",
    ):
        assert label in err, label
    peak = err.split("peak live refpage bytes", 1)[1].split()
    assert peak[1] == "MiB" and float(peak[0]) >= 16.0
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def test_run_summary_of_a_killed_program() -> None:
    result = refmalloc(
        "run", "--summary", "--", sys.executable, "-c", "import os; os.kill(os.getpid(), 9)",
        env=clean_env(),
    )  # fmt: skip
    assert result.returncode == 128 + 9
    assert b"refmalloc: warning: no process wrote a report" in result.stderr


def test_run_report_path_may_hold_a_comma(tmp_path: Path) -> None:
    report = tmp_path / "a,b.json"
    result = refmalloc("run", "--report", str(report), "--", sys.executable, "-c", "pass")
    assert result.returncode == 0, result.stderr.decode()
    assert json.loads(report.read_text())["processes"][0]["pid"] > 0


def test_run_report_not_overwritten_if_created_meanwhile(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    code = f"open({str(report)!r}, 'w').write('mine')"
    result = refmalloc("run", "--report", str(report), "--", sys.executable, "-c", code)
    assert result.returncode == 0
    assert report.read_text() == "mine"
    err = result.stderr.decode()
    assert f"refmalloc: report not written to {report}: it exists (never overwritten)" in err
    kept = err.rsplit("kept in ", 1)[1].strip()
    assert json.loads((Path(kept) / os.listdir(kept)[0]).read_text())["pid"] > 0
    shutil.rmtree(kept)


HEAVY_MODULES = (
    "numpy",
    "cffi",
    "ctypes",
    "json",
    "importlib.metadata",
    "concurrent.futures",
    "subprocess",
    "tempfile",
    "pyalloc.api",
    "pyalloc.reports",
    "pyalloc.check",
    "pyalloc.commands.check",
    "pyalloc.commands.run",
    "pyalloc.commands.report",
)


def _modules_after(code: str) -> set[str]:
    probe = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))"
    cp = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
        cwd=REPO, env=clean_env(),
    )  # fmt: skip
    assert cp.returncode == 0, cp.stderr
    return set(cp.stdout.split())


def test_importing_the_cli_imports_no_heavy_module():
    """`import pyalloc.cli` (208 ms before: every command, the check machinery and
    importlib.metadata) loads click and nothing heavy; commands load when they run."""
    # What the interpreter loads on its own (site, .pth files) does not count.
    loaded = _modules_after("import pyalloc.cli") - _modules_after("pass")
    assert "click" in loaded
    assert sorted(m for m in HEAVY_MODULES if m in loaded) == []


def test_run_true_imports_neither_numpy_cffi_nor_check():
    code = (
        "import pyalloc.cli\n"
        "try:\n"
        "    pyalloc.cli.main(['run', '--', 'true'], prog_name='refmalloc')\n"
        "except SystemExit as exc:\n"
        "    assert exc.code == 0, exc.code\n"
    )
    loaded = _modules_after(code) - _modules_after("pass")
    assert "pyalloc.commands.run" in loaded
    heavy = ("numpy", "cffi", "pyalloc.api", "pyalloc.reports", "pyalloc.check")
    assert sorted(m for m in heavy if m in loaded) == []


def test_summary_says_one_block_not_one_blocks():
    from pyalloc import reports

    proc = {
        "pid": 1, "pattern": 0xAA, "free_pattern": None, "threshold": 131072,
        "page_size": os.sysconf("SC_PAGE_SIZE"),
        "stats": {}, "live_blocks": [{
            "start": 0, "size": 1 << 20, "usable": 1 << 20, "pages": 256,
            "pages_written": 1, "kind": "refpage",
        }], "freed_blocks": [],
    }  # fmt: skip
    try:
        text = reports.render(reports.summarize([proc]))
    except (KeyError, TypeError, ValueError) as exc:  # the report schema moved on
        pytest.fail(f"minimal report no longer accepted: {exc!r}")
    assert "1 block," in text and "1 blocks" not in text
