"""A boot: qemu-system-aarch64 -machine virt[,mte=on] -cpu max with the
kernel and an initramfs, the console read as it comes, and the results of the
commands parsed from it (the protocol in the package's docstring)."""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from rig.fetch import QEMU, fetch_kernel, find_qemu
from rig.host import RigError, progress
from rig.initramfs import GuestCommand, build_initramfs

BOOT_ARGS = "console=ttyAMA0 panic=-1 quiet"
_MARKER_RE = re.compile(r"RIG-(?:START|BEGIN|END|TIMEOUT|DONE|ERROR|NOTE)\b")
_END_RE = re.compile(
    r"RIG-END (?P<name>\S+) (?:exit=(?P<exit>\d+)|signal=(?P<signal>\d+))"
    r"(?: seconds=(?P<seconds>[0-9.]+))?"
)


@dataclass
class CommandResult:
    name: str
    output: list[str]  # console lines between RIG-BEGIN and RIG-END (kernel lines included)
    exit_code: int | None  # both None: the command never ended (the guest died in it)
    signal: int | None
    timed_out: bool = False  # killed (SIGKILL) by /init at the command's timeout
    seconds: float | None = None  # guest wall time of the command

    @property
    def text(self) -> str:
        return "\n".join(self.output)



def qemu_command(
    kernel: Path,
    initramfs: Path,
    *,
    mte: bool = True,
    extra_qemu_args: Sequence[str] = (),
    qemu: Path | None = None,
) -> list[str]:
    """The QEMU command line of a boot (qemu: find_qemu() unless given)."""
    machine = "virt,mte=on" if mte else "virt"
    return [
        str(qemu if qemu is not None else find_qemu()),
        "-machine", machine,
        "-cpu", "max,pauth-impdef=on",
        "-m", "1024",
        "-nographic", "-nic", "none", "-no-reboot",
        # No audio backend: a fetched QEMU would otherwise try the system's
        # audio and UI modules, of another build, and complain on stderr.
        "-audiodev", "none,id=noaudio",
        "-kernel", str(kernel),
        "-initrd", str(initramfs),
        "-append", BOOT_ARGS,
        *extra_qemu_args,
    ]  # fmt: skip


def _tail(console: str, lines: int = 40) -> str:
    return "\n".join(console.splitlines()[-lines:])


def boot(
    kernel: Path,
    initramfs: Path,
    *,
    mte: bool = True,
    timeout: float = 600,
    extra_qemu_args: Sequence[str] = (),
    echo: TextIO | None = None,
    qemu: Path | None = None,
) -> str:
    """Boots the machine and returns its console text ('\\r' removed).

    Raises RigError, with the console's tail in the message and the whole
    console in .console, when the guest did not print RIG-DONE: QEMU failed,
    the boot took longer than `timeout` seconds (QEMU is killed), the kernel
    panicked, or /init printed RIG-ERROR. `echo` gets the console as it comes;
    `qemu` is the qemu-system-aarch64 to run (default find_qemu())."""
    cmd = qemu_command(kernel, initramfs, mte=mte, extra_qemu_args=extra_qemu_args, qemu=qemu)
    progress(f"booting ({'MTE' if mte else 'no MTE'}): {' '.join(cmd)}")
    start = time.monotonic()
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    err_chunks: list[bytes] = []
    stderr_pipe = proc.stderr
    err_reader = threading.Thread(target=lambda: err_chunks.append(stderr_pipe.read()))
    err_reader.start()
    timed_out = threading.Event()

    def expire() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, expire)
    timer.start()
    chunks: list[bytes] = []
    try:
        while True:
            chunk = os.read(proc.stdout.fileno(), 65536)
            if not chunk:
                break
            chunks.append(chunk)
            if echo is not None:
                echo.write(chunk.decode(errors="replace").replace("\r", ""))
                echo.flush()
        proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err_reader.join()
    elapsed = time.monotonic() - start
    console = b"".join(chunks).decode(errors="replace").replace("\r", "")
    stderr = b"".join(err_chunks).decode(errors="replace").strip()
    progress(f"guest ran {elapsed:.1f} s")
    pieces = [p for ln in console.splitlines() for p in _split_markers(ln)]
    errors = [p for p in pieces if p.startswith("RIG-ERROR")]
    if timed_out.is_set():
        why = f"the guest did not finish within {timeout:g} s (QEMU killed)"
    elif errors:
        why = f"the rig failed in the guest: {errors[0]}"
    elif "RIG-DONE" in pieces:
        return console
    elif proc.returncode != 0:
        why = f"{QEMU} exited {proc.returncode}: {stderr}"
    elif "Kernel panic" in console:
        why = "the guest kernel panicked"
    else:
        why = "the guest stopped without printing RIG-DONE"
    if stderr:
        why += f"\n(QEMU's stderr: {stderr})"
    raise RigError(f"{why}\n--- console tail ---\n{_tail(console)}", console)


def _split_markers(line: str) -> list[str]:
    """A console line cut before each RIG-* marker in it."""
    pieces: list[str] = []
    pos = 0
    for marker in _MARKER_RE.finditer(line):
        if marker.start() > pos:
            pieces.append(line[pos : marker.start()])
        pos = marker.start()
    pieces.append(line[pos:])
    return pieces


def parse(console: str) -> dict[str, CommandResult]:
    """The result of every command that has a RIG-BEGIN line in `console`.

    A command whose RIG-END is missing (the guest died in it) has exit_code and
    signal None. Text before a marker on the same line (a command's last line
    without a newline) counts as output of the command running."""
    results: dict[str, CommandResult] = {}
    current: CommandResult | None = None
    for raw in console.replace("\r", "").splitlines():
        for line in _split_markers(raw):
            if line.startswith("RIG-BEGIN "):
                name = line[len("RIG-BEGIN ") :].strip()
                current = CommandResult(name, [], None, None)
                results[name] = current
            elif line.startswith("RIG-TIMEOUT ") and current is not None:
                current.timed_out = True
            elif line.startswith("RIG-END ") and current is not None:
                m = _END_RE.match(line)
                if m and m.group("name") == current.name:
                    if m.group("exit") is not None:
                        current.exit_code = int(m.group("exit"))
                    else:
                        current.signal = int(m.group("signal"))
                    if m.group("seconds"):
                        current.seconds = float(m.group("seconds"))
                    current = None
                else:
                    current.output.append(line)
            elif line.startswith(("RIG-DONE", "RIG-START")):
                current = None
            elif current is not None:
                current.output.append(line)
    return results


def run(
    commands: Sequence[GuestCommand],
    files: Mapping[str, Path],
    *,
    mte: bool = True,
    workdir: Path,
    kernel: Path | None = None,
    timeout: float = 600,
    extra_qemu_args: Sequence[str] = (),
    echo: TextIO | None = None,
    qemu: Path | None = None,
) -> dict[str, CommandResult]:
    """fetch_kernel (unless `kernel`), build_initramfs into
    workdir/initramfs.cpio, boot (console kept in workdir/console.log) and
    parse. Raises RigError when a command has no complete result."""
    kernel = kernel if kernel is not None else fetch_kernel()
    qemu = qemu if qemu is not None else find_qemu()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    initramfs = build_initramfs(workdir / "initramfs.cpio", files=files, commands=commands)
    log = workdir / "console.log"
    try:
        console = boot(
            kernel,
            initramfs,
            mte=mte,
            timeout=timeout,
            extra_qemu_args=extra_qemu_args,
            echo=echo,
            qemu=qemu,
        )
    except RigError as e:
        log.write_text(e.console)
        raise
    log.write_text(console)
    results = parse(console)
    incomplete = [
        c.name
        for c in commands
        if c.name not in results
        or (results[c.name].exit_code is None and results[c.name].signal is None)
    ]
    if incomplete:
        raise RigError(
            f"no result for {', '.join(incomplete)}\n--- console tail ---\n{_tail(console)}",
            console,
        )
    return results
