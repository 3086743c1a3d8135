"""The initramfs of a boot: a static /init (rig/init.c, cross-compiled and
cached), the arm64 dynamic loader and the libraries the programs need (found
with readelf under /usr/aarch64-linux-gnu), the caller's files and
/rig/commands, the commands /init runs (format in the package's docstring)."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rig.host import CC, RigError, cache_dir, cross_compile, need_tool, progress, run_tool

INIT_SOURCE = Path(__file__).resolve().parent / "init.c"
SYSROOT = Path("/usr/aarch64-linux-gnu")
SYSROOT_LIBS = (SYSROOT / "lib", SYSROOT / "lib64", SYSROOT / "usr" / "lib")
GUEST_LIBDIR = "/lib/aarch64-linux-gnu"
# glibc dlopens libgcc_s for unwinding (pthread_exit, pthread_cancel,
# backtrace): no NEEDED entry names it, so it goes in whenever it exists.
ALWAYS_LIBS = ("libgcc_s.so.1",)
DEFAULT_COMMAND_TIMEOUT = 300

_NAME_RE = re.compile(r"[A-Za-z0-9_.:+-]+")
_ENV_KEY_RE = re.compile(r"[^=\0]+")
_ELF_AARCH64 = 183


@dataclass
class GuestCommand:
    name: str
    argv: list[str]  # argv[0] a guest path, e.g. "/bin/mte_tests"
    env: dict[str, str]  # the whole environment; PATH=/bin is added unless set
    timeout: int = DEFAULT_COMMAND_TIMEOUT  # seconds in the guest, 0: no limit



@dataclass
class _Entry:
    mode: int
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def init_binary(cache: Path | None = None) -> Path:
    """The static /init compiled from init.c, cached by source and compiler."""
    cache = cache if cache is not None else cache_dir()
    compiler = need_tool(CC, "gcc-aarch64-linux-gnu libc6-dev-arm64-cross")
    version = run_tool([compiler, "--version"], f"{CC} --version")
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
    return shutil.which("aarch64-linux-gnu-readelf") or need_tool("readelf", "binutils")


def _elf_needed(path: Path) -> list[str]:
    out = run_tool([_readelf(), "-d", "-W", str(path)], f"readelf -d {path}")
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


def _elf_interp(path: Path) -> str | None:
    out = run_tool([_readelf(), "-l", "-W", str(path)], f"readelf -l {path}")
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
    progress(f"building initramfs {out} ({len(files)} files, {len(commands)} commands)")
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
