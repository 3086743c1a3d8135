"""refmalloc's Python side: find the library, build the environment, run programs under it.

``import pyalloc`` gives :func:`lib_path`, the absolute path of ``librefmalloc.so``,
and ``__version__``.
"""

from __future__ import annotations

from pyalloc._version import __version__
from pyalloc.library import lib_path

__all__ = ["__version__", "lib_path"]
