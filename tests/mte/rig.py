"""An emulated arm64 machine, with or without MTE, that runs test programs.

The machine is ``qemu-system-aarch64 -machine virt[,mte=on] -cpu max`` with
Debian's arm64 kernel (fetched with apt, cached) and an initramfs made here:
a static /init (tests/mte/init.c), the arm64 dynamic loader and the libraries
that the programs need (found with readelf from /usr/aarch64-linux-gnu/lib),
the files given by the caller, and /rig/commands, the list of commands that
/init runs one after the other before it powers the machine off.

Host packages: qemu-system-arm, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross,
and apt configured for arm64 (``dpkg --add-architecture arm64 && apt-get
update``) for the kernel. QEMU older than 8.0 (Debian 12 has 7.2) stores MTE
tags wrongly (one tag byte per page, see find_qemu); with such a system QEMU
the rig fetches qemu-system-arm from <codename>-backports into its cache and
runs that binary with the system's libraries (the installed 7.2 brings them).

Under plain TCG the guest has no PERF_COUNT_HW_INSTRUCTIONS (perf_event_open
fails with ENOENT; cycles work). With ``extra_qemu_args=["-icount",
"shift=0"]`` it is there and exact (a 2-instruction loop counts 2.000 per
iteration), boots take ~0.3 s longer, CPU-bound guest work ~1.5x longer, and
guest clocks (the RIG-END seconds) count instructions (1 ns each), not time.

Typical use (see also ``python tests/mte/rig.py --help``)::

    results = rig.run(
        [rig.GuestCommand("calloc", ["/bin/pattern", "calloc"],
                          {"LD_PRELOAD": "/lib/librefmalloc.so"})],
        {"/lib/librefmalloc.so": lib, "/bin/pattern": exe},
        mte=True, workdir=tmp_path)
    assert results["calloc"].exit_code == 0

/rig/commands, read by init.c: one command per line, four fields separated
by one TAB::

    NAME <TAB> TIMEOUT <TAB> ENV <TAB> ARGV

NAME matches ``[A-Za-z0-9_.:+-]+``; TIMEOUT is whole seconds (0: no limit),
after which /init kills every process but itself with SIGKILL (as it does
with what a command leaves running when it ends); ENV is the
command's whole environment as VAR=value words separated by one space (may be
empty; PATH=/bin is added unless it sets PATH); ARGV is the argument words
separated by one space, ARGV[0] the path executed. In ENV and ARGV words any
byte may be written %XX; this module writes '%', space, TAB, newline and every
byte outside 0x21..0x7e that way, so a word may hold anything but NUL.

Console protocol, written by /init, each marker at the start of a line (a
command's unterminated last line may precede a marker on the same line; parse
splits it off)::

    RIG-START commands=N
    RIG-BEGIN NAME
    ... the command's stdout and stderr, and any kernel messages ...
    RIG-TIMEOUT NAME seconds=T        (only when the command's limit was hit)
    RIG-END NAME exit=N seconds=S     or   RIG-END NAME signal=N seconds=S
    RIG-DONE
    RIG-ERROR what went wrong         (a failure of the rig; then power off)
    RIG-NOTE something optional failed (e.g. mounting sysfs)

QEMU exits 0 whatever the guest did: the verdict is read from the console
only, and boot() raises RigError unless the guest printed RIG-DONE.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INIT_SOURCE = HERE / "init.c"
SYSROOT = Path("/usr/aarch64-linux-gnu")
SYSROOT_LIBS = (SYSROOT / "lib", SYSROOT / "lib64", SYSROOT / "usr" / "lib")
GUEST_LIBDIR = "/lib/aarch64-linux-gnu"
CC = "aarch64-linux-gnu-gcc"
CXX = "aarch64-linux-gnu-g++"
QEMU = "qemu-system-aarch64"
MIN_QEMU = (8, 0)  # see find_qemu
KERNEL_META = "linux-image-arm64:arm64"
APT_LISTS = "/var/lib/apt/lists"  # its mtime changes with apt-get update
# glibc dlopens libgcc_s for unwinding (pthread_exit, pthread_cancel,
# backtrace): no NEEDED entry names it, so it goes in whenever it exists.
ALWAYS_LIBS = ("libgcc_s.so.1",)
BOOT_ARGS = "console=ttyAMA0 panic=-1 quiet"
DEFAULT_COMMAND_TIMEOUT = 300

_NAME_RE = re.compile(r"[A-Za-z0-9_.:+-]+")
_ENV_KEY_RE = re.compile(r"[^=\0]+")
_MARKER_RE = re.compile(r"RIG-(?:START|BEGIN|END|TIMEOUT|DONE|ERROR|NOTE)\b")
_END_RE = re.compile(
    r"RIG-END (?P<name>\S+) (?:exit=(?P<exit>\d+)|signal=(?P<signal>\d+))"
    r"(?: seconds=(?P<seconds>[0-9.]+))?"
)
_ELF_AARCH64 = 183


class RigError(Exception):
    """The rig could not run the commands: a missing tool or package, a failed
    build, or a guest that did not print RIG-DONE (timeout, panic, RIG-ERROR).
    ``console`` holds the console text when there was a boot."""

    def __init__(self, message: str, console: str = "") -> None:
        super().__init__(message)
        self.console = console


@dataclass
class GuestCommand:
    name: str
    argv: list[str]  # argv[0] a guest path, e.g. "/bin/mte_tests"
    env: dict[str, str]  # the whole environment; PATH=/bin is added unless set
    timeout: int = DEFAULT_COMMAND_TIMEOUT  # seconds in the guest, 0: no limit


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


@dataclass
class _Entry:
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _progress(message: str) -> None:
    print(f"rig: {message}", file=sys.stderr, flush=True)


def cache_dir() -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/refmalloc-rig, created."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    path = Path(base) / "refmalloc-rig"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _need_tool(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise RigError(f"{tool} not found: apt-get install {package}")
    return found


def _run(cmd: Sequence[str], what: str, cwd: Path | None = None) -> str:
    try:
        cp = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True)
    except OSError as e:
        raise RigError(f"{what}: {e}") from e
    if cp.returncode != 0:
        raise RigError(
            f"{what} failed (exit {cp.returncode}): {' '.join(cmd)}\n{cp.stdout}{cp.stderr}"
        )
    return cp.stdout


# --------------------------------------------------------------------- kernel


def _publish(stage: Path, dest: Path, result: Path) -> None:
    """Move a finished download into the cache in one rename; a concurrent
    fetch that got there first (result exists) is as good."""
    try:
        stage.rename(dest)
    except OSError:
        if not result.is_file():
            raise


@functools.cache
def kernel_package() -> str:
    """The name of the arm64 kernel package that linux-image-arm64 depends on
    now (e.g. linux-image-6.1.0-57-arm64); it changes with security updates.
    The answer of apt-cache (1.5 s) is kept in the cache until apt's package
    lists change."""
    hint = (
        "no arm64 kernel package is known to apt: run "
        "`dpkg --add-architecture arm64 && apt-get update`"
    )
    memo = cache_dir() / "kernel-package"
    try:
        stamp = str(Path(APT_LISTS).stat().st_mtime_ns)
    except OSError:
        stamp = ""
    try:
        saved_stamp, saved = memo.read_text().split()
        if stamp and saved_stamp == stamp:
            return saved
    except (OSError, ValueError):
        pass
    try:
        cp = subprocess.run(["apt-cache", "depends", KERNEL_META], capture_output=True, text=True)
    except OSError as e:
        raise RigError(f"apt-cache: {e}; {hint}") from e
    m = re.search(r"Depends:\s*(linux-image-[0-9][\w.+-]*-arm64)(?::arm64)?\s", cp.stdout + "\n")
    if cp.returncode != 0 or not m:
        raise RigError(f"{hint}\n(apt-cache depends {KERNEL_META}: {cp.stdout}{cp.stderr})")
    if stamp:
        tmp = memo.with_name(f".kernel-package.{os.getpid()}")
        tmp.write_text(f"{stamp} {m.group(1)}\n")
        tmp.replace(memo)
    return m.group(1)


def fetch_kernel(cache: Path | None = None) -> Path:
    """Path of vmlinuz of the current arm64 kernel package's -unsigned variant,
    downloaded with apt-get download and extracted once into
    cache/<package>/ (cache defaults to cache_dir())."""
    cache = cache if cache is not None else cache_dir()
    package = kernel_package()
    dest = cache / package
    vmlinuz = dest / "vmlinuz"
    if vmlinuz.is_file():
        return vmlinuz
    _need_tool("dpkg-deb", "dpkg")
    cache.mkdir(parents=True, exist_ok=True)
    _progress(f"fetching kernel {package}-unsigned:arm64 into {dest}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # apt's sandbox user _apt writes the .deb here
        try:
            _run(
                ["apt-get", "download", f"{package}-unsigned:arm64"],
                "apt-get download",
                cwd=work,
            )
        except RigError as e:
            raise RigError(f"{e}\n(an old package list? run `apt-get update`)") from e
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise RigError(f"apt-get download {package}-unsigned:arm64 left no .deb")
        tree = work / "x"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)], "dpkg-deb -x")
        images = sorted((tree / "boot").glob("vmlinuz-*"))
        configs = sorted((tree / "boot").glob("config-*"))
        if not images:
            raise RigError(f"{debs[0].name} holds no boot/vmlinuz-*")
        if configs and "CONFIG_ARM64_MTE=y" not in configs[0].read_text(errors="replace"):
            raise RigError(f"{package} is built without CONFIG_ARM64_MTE")
        stage = work / "stage"
        stage.mkdir()
        shutil.move(str(images[0]), stage / "vmlinuz")
        if configs:
            shutil.move(str(configs[0]), stage / "config")
        (stage / "package").write_text(debs[0].name + "\n")
        _publish(stage, dest, vmlinuz)
    return vmlinuz


# ---------------------------------------------------------------------- QEMU


def _qemu_version(qemu: str | Path) -> tuple[int, int]:
    out = _run([str(qemu), "--version"], f"{qemu} --version")
    m = re.search(r"version (\d+)\.(\d+)", out)
    if not m:
        raise RigError(f"{qemu} --version: no version in {out!r}")
    return int(m.group(1)), int(m.group(2))


def _os_codename() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError as e:
        raise RigError(f"/etc/os-release: {e}") from e
    m = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not m:
        raise RigError("no VERSION_CODENAME in /etc/os-release")
    return m.group(1)


def _apt_sources() -> list[tuple[str, str, str | None]]:
    """(URI, suite, signed-by or None) of every enabled 'deb' source of apt,
    from sources.list and sources.list.d (one-line and deb822 formats)."""
    found: list[tuple[str, str, str | None]] = []
    etc = Path("/etc/apt")
    lists = [etc / "sources.list", *sorted((etc / "sources.list.d").glob("*.list"))]
    for path in lists:
        try:
            lines = path.read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            m = re.match(
                r"\s*deb\s+(?:\[(?P<opts>[^\]]*)\]\s+)?(?P<uri>\S+)\s+(?P<suite>\S+)", line
            )
            if m:
                opt = re.search(r"signed-by=(\S+)", m.group("opts") or "")
                found.append((m.group("uri"), m.group("suite"), opt.group(1) if opt else None))
    for path in sorted((etc / "sources.list.d").glob("*.sources")):
        try:
            text = path.read_text()
        except OSError:
            continue
        for para in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in para.splitlines():
                key, sep, value = line.partition(":")
                if sep and not line.startswith((" ", "\t", "#")):
                    fields[key.strip().lower()] = value.strip()
            if "deb" not in fields.get("types", "").split():
                continue
            if fields.get("enabled", "yes").lower() == "no":
                continue
            signed = fields.get("signed-by") or None
            if signed and not signed.startswith("/"):
                signed = None  # an inline key: apt's default keyrings must do
            for uri in fields.get("uris", "").split():
                for suite in fields.get("suites", "").split():
                    found.append((uri, suite, signed))
    return found


def fetch_qemu(cache: Path | None = None) -> Path:
    """qemu-system-aarch64 from the qemu-system-arm package of
    <codename>-backports (apt-get download with a private apt configuration
    that adds that suite on the mirror of the system's own sources; nothing
    of the system's apt state changes), extracted once into
    cache/qemu-backports/ and used with the system's libraries."""
    cache = cache if cache is not None else cache_dir()
    dest = cache / "qemu-backports"
    binary = dest / "qemu-system-aarch64"
    if binary.is_file():
        return binary
    _need_tool("dpkg-deb", "dpkg")
    codename = _os_codename()
    mirrors = [(u, s) for u, suite, s in _apt_sources() if suite == codename]
    if not mirrors:
        raise RigError(f"no apt source for suite {codename}: cannot find {codename}-backports")
    uri, signed = mirrors[0]
    arch = _run(["dpkg", "--print-architecture"], "dpkg --print-architecture").strip()
    _progress(f"fetching qemu-system-arm from {codename}-backports into {dest}")
    with tempfile.TemporaryDirectory(dir=cache, prefix=".fetch-qemu-") as tmp:
        work = Path(tmp)
        for sub in ("lists/partial", "cache/archives/partial", "parts", "deb"):
            (work / sub).mkdir(parents=True)
        # apt's sandbox user _apt reads the lists and writes the .deb.
        for path in (work, work / "lists", work / "lists/partial"):
            path.chmod(0o755)
        (work / "deb").chmod(0o777)
        opts = f"[signed-by={signed}] " if signed else ""
        (work / "sources.list").write_text(f"deb {opts}{uri} {codename}-backports main\n")
        apt_opts = [
            "-o", f"Dir::Etc::sourcelist={work / 'sources.list'}",
            "-o", f"Dir::Etc::sourceparts={work / 'parts'}",
            "-o", f"Dir::State::Lists={work / 'lists'}",
            "-o", f"Dir::Cache={work / 'cache'}",
            "-o", f"APT::Architectures={arch}",
            "-o", f"APT::Architecture={arch}",
        ]  # fmt: skip
        _run(["apt-get", *apt_opts, "update"], f"apt-get update ({codename}-backports)")
        _run(
            ["apt-get", *apt_opts, "download", "qemu-system-arm"],
            f"apt-get download qemu-system-arm ({codename}-backports)",
            cwd=work / "deb",
        )
        debs = sorted((work / "deb").glob("qemu-system-arm_*.deb"))
        if not debs:
            raise RigError(f"apt-get download qemu-system-arm ({codename}-backports) left no .deb")
        tree = work / "x"
        _run(["dpkg-deb", "-x", str(debs[0]), str(tree)], "dpkg-deb -x")
        stage = work / "stage"
        stage.mkdir()
        shutil.move(str(tree / "usr" / "bin" / QEMU), stage / QEMU)
        (stage / "package").write_text(debs[0].name + "\n")
        try:
            _qemu_version(stage / QEMU)
        except RigError as e:
            raise RigError(
                f"the {codename}-backports QEMU does not run with this system's libraries "
                f"(apt-get install qemu-system-arm brings most of them): {e}"
            ) from e
        _publish(stage, dest, binary)
    return binary


def find_qemu(cache: Path | None = None) -> Path:
    """The qemu-system-aarch64 to boot: $REFMALLOC_RIG_QEMU if set, else the
    system's if it is version 8.0 or later, else fetch_qemu(cache).

    QEMU before 8.0 (Debian 12's 7.2) keeps one tag byte per page in system
    emulation (the tag address misses the offset in the page): every even
    granule of a page shares one tag, every odd granule another, so stg on one
    granule retags half the page. Its tag checks cannot be trusted."""
    forced = os.environ.get("REFMALLOC_RIG_QEMU")
    if forced:
        return Path(forced)
    system = shutil.which(QEMU)
    if system and _qemu_version(system) >= MIN_QEMU:
        return Path(system)
    return fetch_qemu(cache)


# ---------------------------------------------------------------- compiling


def cross_compile(
    source: Path, out: Path, *, static: bool = False, extra_args: Sequence[str] = ()
) -> Path:
    """aarch64-linux-gnu-gcc -std=gnu11 -O2 SOURCE -o OUT [-static] EXTRA_ARGS
    (aarch64-linux-gnu-g++ -std=gnu++17 for .cc/.cpp/.cxx). Returns OUT."""
    cxx = Path(source).suffix in (".cc", ".cpp", ".cxx")
    if cxx:
        compiler = _need_tool(CXX, "g++-aarch64-linux-gnu")
        std = "-std=gnu++17"
    else:
        compiler = _need_tool(CC, "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
        std = "-std=gnu11"
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [compiler, std, "-O2", str(source), "-o", str(out)]
    if static:
        cmd.append("-static")
    cmd.extend(extra_args)
    _run(cmd, f"cross-compiling {source}")
    return out


def build_library(build: Path) -> Path:
    """librefmalloc.so for arm64: the repository built with CMake and
    cmake/aarch64-linux-gnu.cmake into `build`. Returns the library."""
    toolchain = REPO / "cmake" / "aarch64-linux-gnu.cmake"
    _need_tool(CC, "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    _run(["cmake", "-S", str(REPO), "-B", str(build), f"-DCMAKE_TOOLCHAIN_FILE={toolchain}"],
         "cmake configure (arm64)")
    _run(["cmake", "--build", str(build)], "cmake build (arm64)")
    return build / "librefmalloc.so"


def init_binary(cache: Path | None = None) -> Path:
    """The static /init compiled from init.c, cached by source and compiler."""
    cache = cache if cache is not None else cache_dir()
    compiler = _need_tool(CC, "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    version = _run([compiler, "--version"], f"{CC} --version")
    key = hashlib.sha256(INIT_SOURCE.read_bytes() + version.encode()).hexdigest()[:16]
    path = cache / f"init-{key}"
    if path.is_file():
        return path
    tmp = cache / f".init-{key}.{os.getpid()}"
    cross_compile(INIT_SOURCE, tmp, static=True, extra_args=["-Wall", "-Wextra", "-Werror"])
    tmp.replace(path)
    return path


# ------------------------------------------------------------------- ELF


def _elf_machine(path: Path) -> int | None:
    """e_machine of an ELF file, or None for a file that is not ELF."""
    with open(path, "rb") as f:
        head = f.read(20)
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    if head[5] == 1:
        return int.from_bytes(head[18:20], "little")
    return int.from_bytes(head[18:20], "big")


def _readelf() -> str:
    return shutil.which("aarch64-linux-gnu-readelf") or _need_tool("readelf", "binutils")


def _elf_needed(path: Path) -> list[str]:
    out = _run([_readelf(), "-d", "-W", str(path)], f"readelf -d {path}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def _elf_interp(path: Path) -> str | None:
    out = _run([_readelf(), "-l", "-W", str(path)], f"readelf -l {path}")
    m = re.search(r"Requesting program interpreter: ([^\]]+)\]", out)
    return m.group(1) if m else None


def _find_sysroot_lib(name: str) -> Path | None:
    for d in SYSROOT_LIBS:
        if (d / name).exists():
            return (d / name).resolve()
    return None


def _runtime_files(elves: Sequence[Path], provided: set[str]) -> dict[str, Path]:
    """Guest path -> host file for the loaders and the NEEDED libraries
    (recursively) of `elves`, except those whose name is in `provided`."""
    out: dict[str, Path] = {}
    interps: set[str] = set()
    seen: set[str] = set()
    todo = list(elves)
    for name in ALWAYS_LIBS:
        lib = _find_sysroot_lib(name)
        if lib and name not in provided:
            out[f"{GUEST_LIBDIR}/{name}"] = lib
            todo.append(lib)
    missing: list[str] = []
    while todo:
        elf = todo.pop()
        if str(elf) in seen:
            continue
        seen.add(str(elf))
        interp = _elf_interp(elf)
        if interp and interp not in out:
            host = _find_sysroot_lib(Path(interp).name)
            if host is None:
                raise RigError(f"loader {interp} of {elf} not found under {SYSROOT}")
            out[interp] = host
            interps.add(Path(interp).name)
            todo.append(host)
        for name in _elf_needed(elf):
            guest = f"{GUEST_LIBDIR}/{name}"
            if name in provided or guest in out:
                continue
            host = _find_sysroot_lib(name)
            if host is None:
                missing.append(f"{name} (needed by {elf})")
                continue
            out[guest] = host
            todo.append(host)
    if missing:
        raise RigError(f"libraries not found under {SYSROOT}: {', '.join(missing)}")
    # The loader satisfies libc's NEEDED entry for itself: one copy is enough.
    return {
        g: h
        for g, h in out.items()
        if not (g.startswith(GUEST_LIBDIR + "/") and Path(g).name in interps)
    }


# --------------------------------------------------------------- initramfs


def _escape_word(word: str) -> str:
    out = []
    for b in word.encode():
        if b == 0:
            raise RigError(f"NUL byte in a command word: {word!r}")
        out.append(chr(b) if 0x21 <= b <= 0x7E and b != 0x25 else f"%{b:02X}")
    return "".join(out)


def command_line(cmd: GuestCommand) -> str:
    """The /rig/commands line of one command (with its final newline)."""
    if not _NAME_RE.fullmatch(cmd.name):
        raise RigError(f"command name {cmd.name!r} does not match {_NAME_RE.pattern}")
    if not cmd.argv or not cmd.argv[0]:
        raise RigError(f"command {cmd.name}: empty argv")
    if cmd.timeout < 0:
        raise RigError(f"command {cmd.name}: negative timeout")
    for key in cmd.env:
        if not _ENV_KEY_RE.fullmatch(key):
            raise RigError(f"command {cmd.name}: bad environment variable name {key!r}")
    env = " ".join(_escape_word(f"{k}={v}") for k, v in cmd.env.items())
    argv = " ".join(_escape_word(a) for a in cmd.argv)
    return f"{cmd.name}\t{int(cmd.timeout)}\t{env}\t{argv}\n"


def _cpio(entries: Mapping[str, _Entry]) -> bytes:
    """A newc ("070701") archive of entries (guest path without leading '/')."""
    chunks: list[bytes] = []

    def put(ino: int, name: str, e: _Entry) -> None:
        encoded = name.encode() + b"\0"
        fields = (
            ino,
            e.mode,
            0,
            0,
            2 if e.mode & 0o170000 == 0o040000 else 1,
            0,
            len(e.data),
            0,
            0,
            e.rdev[0],
            e.rdev[1],
            len(encoded),
            0,
        )
        header = b"070701" + b"".join(b"%08X" % v for v in fields)
        chunks.append(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))
        chunks.append(e.data + b"\0" * (-len(e.data) % 4))

    for ino, (name, e) in enumerate(sorted(entries.items()), start=1):
        put(ino, name, e)
    put(0, "TRAILER!!!", _Entry(mode=0))
    return b"".join(chunks)


def build_initramfs(
    out: Path, *, files: Mapping[str, Path], commands: Sequence[GuestCommand]
) -> Path:
    """Writes the initramfs (uncompressed newc cpio) to OUT and returns OUT.

    files maps guest paths to host files (e.g. {"/lib/librefmalloc.so": lib,
    "/bin/mte_tests": exe}); added are /init (init.c, cached), the loader and
    every library that the ELF files need (from /usr/aarch64-linux-gnu/lib,
    into /lib/aarch64-linux-gnu unless `files` has one of that name),
    /dev/console, /proc, /sys, /tmp and /rig/commands."""
    names = [c.name for c in commands]
    dups = sorted({n for n in names if names.count(n) > 1})
    if dups:
        raise RigError(f"command names used twice: {', '.join(dups)}")
    _progress(f"building initramfs {out} ({len(files)} files, {len(commands)} commands)")
    elves: list[Path] = []
    for guest, host in files.items():
        if not guest.startswith("/") or guest.endswith("/") or "//" in guest:
            raise RigError(f"guest path {guest!r} is not an absolute file path")
        if not Path(host).is_file():
            raise RigError(f"{host} (for {guest}) is not a file")
        machine = _elf_machine(Path(host))
        if machine is not None and machine != _ELF_AARCH64:
            raise RigError(f"{host} (for {guest}) is an ELF file for machine {machine}, not arm64")
        if machine is not None:
            elves.append(Path(host))
    provided = {Path(g).name for g in files}
    all_files: dict[str, Path] = _runtime_files(elves, provided)
    all_files.update(files)
    all_files["/init"] = init_binary()

    entries: dict[str, _Entry] = {}

    def add_dirs(path: str) -> None:
        parent = path
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            entries.setdefault(parent, _Entry(mode=0o040755))

    for d in ("bin", "dev", "proc", "sys", "rig", "lib", "etc"):
        entries[d] = _Entry(mode=0o040755)
    entries["tmp"] = _Entry(mode=0o041777)
    entries["dev/console"] = _Entry(mode=0o020600, rdev=(5, 1))
    for guest, host in all_files.items():
        rel = guest.lstrip("/")
        add_dirs(rel)
        perm = Path(host).stat().st_mode & 0o777
        entries[rel] = _Entry(mode=0o100000 | perm | 0o444, data=Path(host).read_bytes())
    rel = "rig/commands"
    entries[rel] = _Entry(mode=0o100644, data="".join(command_line(c) for c in commands).encode())
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_cpio(entries))
    return out


# --------------------------------------------------------------------- boot


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
    _progress(f"booting ({'MTE' if mte else 'no MTE'}): {' '.join(cmd)}")
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
    _progress(f"guest ran {elapsed:.1f} s")
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


# ---------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rig.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Boot an emulated arm64 machine (QEMU virt, -cpu max, MTE unless --no-mte)\n"
            "with Debian's arm64 kernel and run one command in it, optionally with\n"
            "librefmalloc.so preloaded. The console is shown as it comes; the exit\n"
            "status is the command's (128+N for signal N, 2 for a rig failure)."
        ),
        epilog=(
            "example:\n"
            "  python tests/mte/rig.py --lib build-arm64/librefmalloc.so \\\n"
            "      --prog build-arm64/pattern --env REFMALLOC_OPTIONS=mte=1 \\\n"
            "      -- /bin/pattern calloc\n"
            "\n"
            "--lib puts the library at /lib/librefmalloc.so and sets LD_PRELOAD to it;\n"
            "--prog puts an arm64 executable at /bin/<its name>; without a guest command\n"
            "after --, the first --prog runs with no arguments. The loader and libraries\n"
            "that the programs need are added from /usr/aarch64-linux-gnu/lib. The kernel\n"
            "is cached in ${XDG_CACHE_HOME:-~/.cache}/refmalloc-rig/."
        ),
    )
    parser.add_argument("--lib", type=Path, help="arm64 librefmalloc.so to preload")
    parser.add_argument(
        "--prog",
        type=Path,
        action="append",
        default=[],
        help="arm64 executable for /bin/<name> (repeatable)",
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="HOST:GUEST",
        help="another file for the guest, e.g. data.bin:/tmp/data.bin",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="environment of the command (repeatable)",
    )
    parser.add_argument(
        "--no-mte",
        dest="mte",
        action="store_false",
        help="a machine without MTE (-machine virt without mte=on)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds for the whole boot (default 600)"
    )
    parser.add_argument(
        "--qemu-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for qemu-system-aarch64 (repeatable)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where initramfs.cpio and console.log go (default: a temp dir)"
    )
    parser.add_argument("--kernel", type=Path, help="vmlinuz to boot instead of the fetched one")
    parser.add_argument(
        "--qemu",
        type=Path,
        help="qemu-system-aarch64 to run (default: $REFMALLOC_RIG_QEMU, else the system's "
        "if >= 8.0, else one fetched from <codename>-backports)",
    )
    parser.add_argument("command", nargs="*", help="the guest argv, after --")
    args = parser.parse_args(argv)

    files: dict[str, Path] = {}
    env: dict[str, str] = {}
    if args.lib:
        files["/lib/librefmalloc.so"] = args.lib
        env["LD_PRELOAD"] = "/lib/librefmalloc.so"
    for prog in args.prog:
        files[f"/bin/{prog.name}"] = prog
    for spec in args.file:
        host, sep, guest = spec.partition(":")
        if not sep:
            parser.error(f"--file {spec}: expected HOST:GUEST")
        files[guest] = Path(host)
    for spec in args.env:
        key, sep, value = spec.partition("=")
        if not sep:
            parser.error(f"--env {spec}: expected VAR=VALUE")
        env[key] = value
    command = list(args.command)
    if not command:
        if not args.prog:
            parser.error("give a guest command after -- or at least one --prog")
        command = [f"/bin/{args.prog[0].name}"]

    cmd = GuestCommand("cli", command, env, timeout=0)
    try:
        with tempfile.TemporaryDirectory(prefix="rig-") as tmp:
            workdir = args.workdir or Path(tmp)
            start = time.monotonic()
            kernel = args.kernel or fetch_kernel()
            qemu = args.qemu or find_qemu()
            results = run(
                [cmd],
                files,
                mte=args.mte,
                workdir=workdir,
                kernel=kernel,
                timeout=args.timeout,
                extra_qemu_args=args.qemu_arg,
                echo=sys.stdout,
                qemu=qemu,
            )
            _progress(f"total {time.monotonic() - start:.1f} s")
    except RigError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 2
    r = results["cli"]
    if r.signal is not None:
        _progress(f"{' '.join(command)}: killed by signal {r.signal}")
        return 128 + r.signal
    _progress(f"{' '.join(command)}: exit {r.exit_code}")
    return r.exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
