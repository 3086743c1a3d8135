"""Build the environment of a program run under librefmalloc.so."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence

from pyalloc.backends import is_allocator
from pyalloc.library import lib_path
from pyalloc.options import ENV_VAR as OPTIONS_VAR
from pyalloc.options import merge_options

PRELOAD_VAR = "LD_PRELOAD"
PYTHONMALLOC_VAR = "PYTHONMALLOC"

# python, python3, python3.11, python3.11d, pypy3, python3-dbg, ...
_PYTHON_NAME = re.compile(r"(python|pypy)[0-9.]*[a-z]?(-dbg)?")

# ld.so splits LD_PRELOAD on spaces and colons.
_PRELOAD_SEPARATORS = re.compile(r"[:\s]+")


def split_preload(value: str | None) -> list[str]:
    """The entries of an LD_PRELOAD value, as ld.so reads them."""
    return [entry for entry in _PRELOAD_SEPARATORS.split(value or "") if entry]


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a == b


def _check_preloadable(path: str, what: str) -> None:
    if _PRELOAD_SEPARATORS.search(path):
        raise ValueError(
            f"cannot preload {path!r}: LD_PRELOAD cannot hold a path containing "
            f"a space or a colon; {what}"
        )


def preload_value(
    lib: str,
    existing: str | None,
    backend: str | None = None,
    replace_allocators: bool = False,
) -> str:
    """LD_PRELOAD with ``lib`` first, then ``backend``, then the existing entries.

    The next allocator is whatever comes after refmalloc in the lookup order, so an
    allocator preloaded already (jemalloc, mimalloc, ...) stays behind refmalloc, unless
    ``replace_allocators`` (a backend was chosen) drops such entries. Other copies of
    ``lib`` and ``backend`` are dropped too.
    """
    _check_preloadable(lib, "set REFMALLOC_LIB to a path without them")
    front = [lib]
    if backend is not None:
        _check_preloadable(backend, "copy or link the library to a path without them")
        front.append(backend)
    rest = [
        entry
        for entry in split_preload(existing)
        if not any(_same_file(entry, mine) for mine in front)
        and not (replace_allocators and is_allocator(entry))
    ]
    return ":".join([*front, *rest])


def _shebang_is_python(path: str) -> bool:
    try:
        with open(path, "rb") as handle:
            first = handle.readline(256)
    except OSError:
        return False
    if not first.startswith(b"#!"):
        return False
    words = first[2:].decode("utf-8", "replace").split()
    if not words:
        return False
    # "#!/usr/bin/env python3" or "#!/usr/bin/python3 -E"
    interpreter = words[1] if os.path.basename(words[0]) == "env" and len(words) > 1 else words[0]
    return _PYTHON_NAME.fullmatch(os.path.basename(interpreter)) is not None


def is_python_command(argv: Sequence[str], path: str | None = None) -> bool:
    """Is ``argv`` a Python interpreter, or a script run by one (``pytest``, ``pip``)?"""
    if not argv:
        return False
    name = argv[0]
    if _PYTHON_NAME.fullmatch(os.path.basename(name)):
        return True
    found = name if os.sep in name else shutil.which(name, path=path)
    if found is None:
        return False
    if _PYTHON_NAME.fullmatch(os.path.basename(os.path.realpath(found))):
        return True
    return _shebang_is_python(found)


def child_env(
    options: Mapping[str, object] | None = None,
    base: Mapping[str, str] | None = None,
    lib: str | None = None,
    *,
    backend: str | None = None,
    replace_allocators: bool = False,
    python_malloc: bool = False,
) -> dict[str, str]:
    """The environment for a child process run under refmalloc.

    ``base`` defaults to ``os.environ``; ``lib`` to :func:`pyalloc.lib_path`. Options
    already in the base REFMALLOC_OPTIONS are kept unless ``options`` overrides them
    (None values override nothing). ``backend`` is a library preloaded right after
    refmalloc (see :func:`preload_value`); ``python_malloc`` sets PYTHONMALLOC=malloc so
    that Python's small objects go through malloc too.
    """
    env = dict(os.environ if base is None else base)
    library = lib_path() if lib is None else lib
    env[PRELOAD_VAR] = preload_value(
        library, env.get(PRELOAD_VAR), backend=backend, replace_allocators=replace_allocators
    )
    if python_malloc:
        env[PYTHONMALLOC_VAR] = "malloc"
    merged = merge_options(env.get(OPTIONS_VAR), options or {})
    if merged:
        env[OPTIONS_VAR] = merged
    else:
        env.pop(OPTIONS_VAR, None)
    return env
