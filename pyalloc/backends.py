"""Allocators stacked behind refmalloc (``refmalloc run --backend``).

refmalloc hands small blocks to the *next* allocator in the symbol lookup order: the one
preloaded right after it, or glibc's when there is none. A backend is therefore just a
library placed after refmalloc in ``LD_PRELOAD``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Final


@dataclass(frozen=True)
class Backend:
    """A named allocator: its shared object and the Debian package that ships it."""

    name: str
    soname: str
    package: str


#: Backends known by name. ``glibc`` is the C library's own malloc: nothing to preload.
KNOWN: Final = {
    "jemalloc": Backend("jemalloc", "libjemalloc.so.2", "libjemalloc2"),
    "mimalloc": Backend("mimalloc", "libmimalloc.so.2", "libmimalloc2.0"),
    "tcmalloc": Backend("tcmalloc", "libtcmalloc_minimal.so.4", "libtcmalloc-minimal4"),
}
GLIBC: Final = "glibc"
NAMES: Final = (GLIBC, *KNOWN)

# Entries of an existing LD_PRELOAD that are allocators themselves: a --backend replaces
# them, since only the first one after refmalloc would serve anything.
_ALLOCATOR_RE: Final = re.compile(r"^lib(jemalloc|mimalloc|tcmalloc|tcmalloc_minimal)\b.*\.so")

_ELF_MAGIC: Final = b"\x7fELF"


class BackendError(ValueError):
    """A backend that cannot be used; the message says why and how to fix it."""


def library_dirs() -> list[Path]:
    """Directories searched for a named backend, in order."""
    dirs: list[Path] = []
    multiarch = sysconfig.get_config_var("MULTIARCH")
    for base in ("/usr/lib", "/lib", "/usr/local/lib"):
        if multiarch:
            dirs.append(Path(base) / str(multiarch))
        dirs.append(Path(base))
    dirs.extend(Path(p) for p in ("/usr/lib64", "/lib64"))
    return dirs


def _ldconfig_lookup(soname: str) -> Path | None:
    """Where the dynamic loader's cache says ``soname`` lives, if anywhere."""
    for ldconfig in ("/sbin/ldconfig", "/usr/sbin/ldconfig"):
        if not os.access(ldconfig, os.X_OK):
            continue
        try:
            out = subprocess.run(
                [ldconfig, "-p"], capture_output=True, text=True, timeout=10, check=False
            ).stdout
        except (OSError, subprocess.SubprocessError):
            return None
        for line in out.splitlines():
            name, _, target = line.strip().partition(" => ")
            if name.split(" ", 1)[0] == soname and target:
                return Path(target)
        return None
    return None


def find(backend: Backend, dirs: list[Path] | None = None) -> Path | None:
    """The path of a named backend's library, or None if it is not installed."""
    for directory in library_dirs() if dirs is None else dirs:
        candidate = directory / backend.soname
        if candidate.is_file():
            return candidate
    if dirs is None:
        found = _ldconfig_lookup(backend.soname)
        if found is not None and found.is_file():
            return found
    return None


def _check_shared_object(path: Path, text: str) -> None:
    if not path.exists():
        raise BackendError(f"backend {text!r}: no such file")
    if not path.is_file():
        raise BackendError(f"backend {text!r}: not a regular file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise BackendError(f"backend {text!r}: cannot read it ({exc.strerror})") from exc
    if magic != _ELF_MAGIC:
        raise BackendError(f"backend {text!r}: not an ELF shared object")


def resolve(text: str, dirs: list[Path] | None = None) -> str | None:
    """The library to preload after refmalloc for ``--backend TEXT``.

    ``glibc`` gives None (nothing to preload). A known name gives the installed library,
    or BackendError naming the Debian package that provides it. Anything containing a
    ``/`` is a path to a shared object.
    """
    if text == GLIBC:
        return None
    backend = KNOWN.get(text)
    if backend is not None:
        path = find(backend, dirs)
        if path is None:
            raise BackendError(
                f"backend {text}: {backend.soname} not found; it comes with the Debian "
                f"package {backend.package} (apt-get install {backend.package})"
            )
        return str(path)
    if os.sep not in text:
        raise BackendError(
            f"unknown backend {text!r}: expected one of {', '.join(NAMES)} or a path to a "
            "shared object (e.g. ./libmyalloc.so)"
        )
    path = Path(text).expanduser()
    _check_shared_object(path, text)
    if re.search(r"[:\s]", str(path.absolute())):
        raise BackendError(
            f"backend {text!r}: LD_PRELOAD cannot hold a path containing a space or a "
            "colon; copy or link the library to a path without them"
        )
    return str(path.absolute())


def is_allocator(entry: str) -> bool:
    """Does an LD_PRELOAD entry name one of the known allocators?"""
    return _ALLOCATOR_RE.match(os.path.basename(entry)) is not None
