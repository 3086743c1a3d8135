"""refmalloc check stops on SIGINT/SIGTERM: every run (and its process group) is killed
and reaped, and check exits 128+N. Signals sent for real: os.kill, and Ctrl-C typed on a
pseudo-terminal, which the terminal sends to the foreground process group only."""

from __future__ import annotations

import errno
import os
import pty
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rmhelpers import REPO, clean_env

# Each run records its own pid and a background child's, then waits: only a kill ends it.
SCRIPT = 'sleep 1000 & echo $! >> "$PIDS"; echo $$ >> "$PIDS"; wait'
RUNS = 4  # A1, B1, A2 and the tracked run R1 start together (--jobs 4)


def _env(lib: str, pids: Path) -> dict:
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return clean_env({"REFMALLOC_LIB": lib, "PIDS": str(pids), "PYTHONPATH": python_path})


def _argv() -> list[str]:
    return [sys.executable, "-m", "pyalloc", "check", "--", "/bin/sh", "-c", SCRIPT]


def _wait_for_pids(pids: Path, proc_alive, deadline: float = 60) -> list[int]:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if pids.exists():
            got = [int(x) for x in pids.read_text().split()]
            if len(got) == 2 * RUNS:
                return got
        assert proc_alive(), "check ended before its runs started"
        time.sleep(0.05)
    raise AssertionError(f"the runs did not start: {pids.read_text() if pids.exists() else ''}")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # Still there: a zombie waiting for a parent counts as not gone.
    return False


def _wait_gone(pids: list[int], deadline: float = 10) -> list[int]:
    end = time.monotonic() + deadline
    left = pids
    while left and time.monotonic() < end:
        left = [p for p in left if not _gone(p)]
        time.sleep(0.05)
    return left


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_kills_every_run_and_exits_128_plus_n(lib, tmp_path, sig):
    pids = tmp_path / "pids"
    proc = subprocess.Popen(
        _argv(), env=_env(lib, pids), cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        started = _wait_for_pids(pids, lambda: proc.poll() is None)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + sig, out + err
    assert f"stopped by {signal.Signals(sig).name}; every run was killed" in err
    assert "verdict" not in out
    assert _wait_gone(started) == []


def _read_all(fd: int, until_exit, deadline: float = 30) -> bytes:
    data = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError as exc:
                if exc.errno == errno.EIO:  # the other side closed
                    break
                raise
            if not chunk:
                break
            data += chunk
        elif until_exit():
            break
    return data


def test_ctrl_c_on_a_terminal_stops_check(lib, tmp_path):
    """The runs have process groups of their own: the terminal's SIGINT reaches only
    check, which must pass it on. The status line is drawn on the terminal meanwhile."""
    pids = tmp_path / "pids"
    env = _env(lib, pids)
    pid, master = pty.fork()
    if pid == 0:  # the child: a session leader with the pty as controlling terminal
        try:
            os.chdir(tmp_path)
            os.execve(sys.executable, _argv(), env)
        finally:
            os._exit(127)
    status = None

    def exited() -> bool:
        nonlocal status
        if status is None:
            got, st = os.waitpid(pid, os.WNOHANG)
            if got == pid:
                status = st
        return status is not None

    try:
        output = b""
        end = time.monotonic() + 60
        while not (pids.exists() and len(pids.read_text().split()) == 2 * RUNS):
            assert time.monotonic() < end and not exited(), output.decode(errors="replace")
            ready, _, _ = select.select([master], [], [], 0.05)
            if ready:
                output += os.read(master, 4096)
        started = [int(x) for x in pids.read_text().split()]
        os.write(master, b"\x03")  # Ctrl-C: ISIG is on in a fresh pty
        output += _read_all(master, exited)
        end = time.monotonic() + 30
        while not exited() and time.monotonic() < end:
            time.sleep(0.05)
    finally:
        if not exited():
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(master)
    text = output.decode(errors="replace")
    assert status is not None and os.waitstatus_to_exitcode(status) == 130, text
    assert "stopped by SIGINT; every run was killed" in text
    assert "\r\x1b[Krefmalloc check: running" in text  # the TTY status line
    assert _wait_gone(started) == []
