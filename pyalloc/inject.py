"""Build the environment of a program run under librefmalloc.so."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pyalloc.library import lib_path
from pyalloc.options import ENV_VAR as OPTIONS_VAR
from pyalloc.options import merge_options

PRELOAD_VAR = "LD_PRELOAD"

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


def preload_value(lib: str, existing: str | None) -> str:
    """LD_PRELOAD with ``lib`` first, then the existing entries (other copies of lib dropped).

    The next allocator is whatever comes after refmalloc in the lookup order, so an
    allocator preloaded already (jemalloc, mimalloc, ...) stays behind refmalloc.
    """
    if _PRELOAD_SEPARATORS.search(lib):
        raise ValueError(
            f"cannot preload {lib!r}: LD_PRELOAD cannot hold a path containing "
            "a space or a colon; set REFMALLOC_LIB to a path without them"
        )
    rest = [entry for entry in split_preload(existing) if not _same_file(entry, lib)]
    return ":".join([lib, *rest])


def child_env(
    options: Mapping[str, object] | None = None,
    base: Mapping[str, str] | None = None,
    lib: str | None = None,
) -> dict[str, str]:
    """The environment for a child process run under refmalloc.

    ``base`` defaults to ``os.environ``; ``lib`` to :func:`pyalloc.lib_path`. Options
    already in the base REFMALLOC_OPTIONS are kept unless ``options`` overrides them
    (None values override nothing).
    """
    env = dict(os.environ if base is None else base)
    library = lib_path() if lib is None else lib
    env[PRELOAD_VAR] = preload_value(library, env.get(PRELOAD_VAR))
    merged = merge_options(env.get(OPTIONS_VAR), options or {})
    if merged:
        env[OPTIONS_VAR] = merged
    else:
        env.pop(OPTIONS_VAR, None)
    return env
