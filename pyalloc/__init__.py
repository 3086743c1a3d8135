"""refmalloc's Python side: find the library, run programs under it, look inside.

``import pyalloc`` gives:

- :func:`lib_path`: the absolute path of ``librefmalloc.so``;
- :func:`active`: is this process running under refmalloc;
- :func:`stats`: the library's counters, as a :class:`Stats` dataclass;
- :func:`pages_written` / :func:`page_states`: per page of a buffer (numpy array,
  bytearray, memoryview...), whether the program wrote it;
- :func:`pattern`, :func:`version`, :func:`write_report`;
- :func:`set_context`: name the current context (a test id) of read-before-write
  findings (``track_reads=1``);
- :func:`load_report`: the process reports in a report file.

The in-process functions (cffi, numpy) are imported on first use, so that
``import pyalloc`` stays cheap for the command line and the pytest plugin.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from pyalloc.library import lib_path

if TYPE_CHECKING:
    from pyalloc._version import __version__
    from pyalloc.api import (
        NotLoadedError,
        Stats,
        active,
        page_states,
        pages_written,
        pattern,
        set_context,
        stats,
        version,
        write_report,
    )
    from pyalloc.reports import load as load_report

_LAZY = {
    # importlib.metadata: tens of milliseconds, only when the version is asked for.
    "__version__": ("pyalloc._version", "__version__"),
    "NotLoadedError": ("pyalloc.api", "NotLoadedError"),
    "Stats": ("pyalloc.api", "Stats"),
    "active": ("pyalloc.api", "active"),
    "page_states": ("pyalloc.api", "page_states"),
    "pages_written": ("pyalloc.api", "pages_written"),
    "pattern": ("pyalloc.api", "pattern"),
    "set_context": ("pyalloc.api", "set_context"),
    "stats": ("pyalloc.api", "stats"),
    "version": ("pyalloc.api", "version"),
    "write_report": ("pyalloc.api", "write_report"),
    "load_report": ("pyalloc.reports", "load"),
}

__all__ = [
    "NotLoadedError",
    "Stats",
    "__version__",
    "active",
    "lib_path",
    "load_report",
    "page_states",
    "pages_written",
    "pattern",
    "set_context",
    "stats",
    "version",
    "write_report",
]


def __getattr__(name: str) -> Any:
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'pyalloc' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
