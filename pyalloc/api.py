"""In-process API: cffi (ABI mode) bindings to the library loaded in *this* process.

Nothing is compiled: the functions of ``refmalloc.h`` are looked up in the process's
global symbol scope (``dlopen(NULL)``), where they are when the interpreter runs with
``LD_PRELOAD=librefmalloc.so`` (``refmalloc run -- python ...``, ``pytest --refmalloc``).
Python's small objects only go through malloc with ``PYTHONMALLOC=malloc``.
"""

from __future__ import annotations

import os
import threading
from dataclasses import fields, make_dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from cffi import FFI

from pyalloc import tables

STATS_VERSION: Final = tables.stats_version()

PAGE_UNTOUCHED: Final = 0
PAGE_PATTERN: Final = 1
PAGE_WRITTEN: Final = 2

#: The fields of struct refmalloc_stats: its REFMALLOC_STATS list in refmalloc.h.
STATS_FIELDS: Final = ("version", *(stat.name for stat in tables.stats()))

CDEF: Final = (
    "struct refmalloc_stats {\n"
    + "".join(f"    uint64_t {name};\n" for name in STATS_FIELDS)
    + """};
int refmalloc_get_stats(struct refmalloc_stats *out, size_t size);
struct refmalloc_block_info {
    void *start;
    size_t size;
    size_t usable;
    size_t pages;
    size_t pages_written;
    size_t pages_pattern;
    int kind;
    unsigned char pattern;
};
int refmalloc_query(const void *addr, struct refmalloc_block_info *info);
long refmalloc_page_states(const void *addr, size_t len, unsigned char *states);
int refmalloc_write_report(const char *path);
int refmalloc_set_context(const char *name);
unsigned char refmalloc_pattern(void);
const char *refmalloc_version(void);

typedef struct {
    const char *dli_fname;
    void *dli_fbase;
    const char *dli_sname;
    void *dli_saddr;
} Dl_info;
int dladdr(const void *addr, Dl_info *info);
void *malloc(size_t size);
"""
)


class NotLoadedError(RuntimeError):
    """The library is not loaded in this process (or does not serve its malloc)."""


def _as_dict(self: Any) -> dict[str, int]:
    return {f.name: getattr(self, f.name) for f in fields(self)}


#: refmalloc's counters since start-up (``struct refmalloc_stats`` without version), one
#: int attribute per counter of refmalloc.h's REFMALLOC_STATS.
Stats = make_dataclass(
    "Stats",
    [(name, int) for name in STATS_FIELDS[1:]],
    frozen=True,
    namespace={"as_dict": _as_dict},
)
Stats.__module__ = __name__
Stats.__doc__ = """refmalloc's counters since start-up (``struct refmalloc_stats`` without version).

"large" blocks are at or above the threshold and owned by refmalloc: ``refpage``
(reference pages), ``eager`` (fallback: anonymous memory + memset), ``zero`` (large
calloc). "small" blocks come from the next allocator, filled with the pattern. What each
counter means: refmalloc.h, or ``pyalloc.tables.stats()``.
"""


_ffi = FFI()
_ffi.cdef(CDEF)
_lock = threading.Lock()
_global: Any = None


def _scope() -> Any:
    """The process's global symbol scope (dlopen(NULL)), opened once."""
    global _global
    with _lock:
        if _global is None:
            _global = _ffi.dlopen(None)
        return _global


def _object_of(address: Any) -> tuple[Any, str]:
    """(load base, file name) of the shared object holding ``address``."""
    info = _ffi.new("Dl_info *")
    if _scope().dladdr(address, info) == 0:
        return None, "?"
    name = _ffi.string(info.dli_fname).decode() if info.dli_fname else "?"
    return int(_ffi.cast("uintptr_t", info.dli_fbase)), name


def _library() -> Any:
    """The global scope, after checking that refmalloc is loaded and serves malloc."""
    scope = _scope()
    try:
        get_stats = scope.refmalloc_get_stats
    except AttributeError:
        raise NotLoadedError(
            f"refmalloc is not loaded in this process (pid {os.getpid()}): run Python under "
            "it, e.g. `refmalloc run -- python script.py`, `pytest --refmalloc`, or "
            "LD_PRELOAD=$(refmalloc lib-path) PYTHONMALLOC=malloc python script.py"
        ) from None
    ours, lib_name = _object_of(_ffi.cast("void *", get_stats))
    theirs, malloc_name = _object_of(_ffi.cast("void *", scope.malloc))
    if ours != theirs:
        raise NotLoadedError(
            f"{lib_name} is loaded in this process but malloc comes from {malloc_name}: "
            "refmalloc must be preloaded (LD_PRELOAD), not loaded later"
        )
    return scope


def active() -> bool:
    """Is this process running under refmalloc (its malloc is refmalloc's)?"""
    try:
        _library()
    except NotLoadedError:
        return False
    return True


def loaded_path() -> str:
    """Path of the librefmalloc.so serving this process (raises NotLoadedError)."""
    lib = _library()
    return _object_of(_ffi.cast("void *", lib.refmalloc_get_stats))[1]


def stats() -> Stats:
    """The library's counters now (raises NotLoadedError when not under refmalloc)."""
    lib = _library()
    raw = _ffi.new("struct refmalloc_stats *")
    lib.refmalloc_get_stats(raw, _ffi.sizeof("struct refmalloc_stats"))
    if raw.version != STATS_VERSION:
        raise RuntimeError(
            f"librefmalloc.so reports stats version {raw.version}, this pyalloc reads "
            f"version {STATS_VERSION}: reinstall refmalloc so that both match"
        )
    return Stats(**{f.name: int(getattr(raw, f.name)) for f in fields(Stats)})


def pattern() -> int:
    """The pattern byte of fresh blocks in this process."""
    return int(_library().refmalloc_pattern())


def version() -> str:
    """The version of the library serving this process; outside refmalloc, the version
    of this pyalloc (the library it installs is built from the same release)."""
    try:
        lib = _library()
    except NotLoadedError:
        from pyalloc._version import __version__

        return __version__
    return str(_ffi.string(lib.refmalloc_version()).decode())


def write_report(path: str | os.PathLike[str] | None = None) -> None:
    """Write the JSON report now (None: the configured ``report=`` path).

    The file must not exist yet; raises OSError otherwise.
    """
    lib = _library()
    arg = _ffi.NULL if path is None else os.fsencode(path)
    if lib.refmalloc_write_report(arg) != 0:
        err = _ffi.errno
        raise OSError(err, f"refmalloc_write_report: {os.strerror(err)}", os.fspath(path or ""))


def set_context(name: str | None) -> bool:
    """Name the current context (e.g. a test id) that read-before-write findings are
    recorded under (``track_reads=1``); None clears it. False when the library's table
    of names is full (the report counts it in ``reads.contexts_dropped``)."""
    lib = _library()
    arg = _ffi.NULL if name is None else name.encode("utf-8", "surrogateescape")
    return bool(lib.refmalloc_set_context(arg) == 0)


def _extent(obj: Any) -> tuple[int, int]:
    """(address, length) of the memory spanned by a buffer, without copying it."""
    if isinstance(obj, np.ndarray):
        array = obj
    else:
        try:
            view = memoryview(obj)
        except TypeError:
            raise TypeError(
                f"pages_written() needs a buffer (numpy array, bytearray, memoryview, ...), "
                f"not {type(obj).__name__}"
            ) from None
        array = np.asarray(view) if view.nbytes else np.empty(0, np.uint8)
    if array.size == 0:
        return 0, 0
    address = int(array.__array_interface__["data"][0])
    low = high = 0
    for extent, stride in zip(array.shape, array.strides, strict=True):
        span = (extent - 1) * stride
        if span < 0:
            low += span
        else:
            high += span
    return address + low, high - low + array.itemsize


def page_states(obj: Any) -> npt.NDArray[np.uint8]:
    """Per page of the memory under ``obj``: 0 never touched, 1 still the shared pattern
    page, 2 written (a private copy; in anonymous memory, and in a shared mapping such
    as ``mmap.mmap(-1, n)``, any touched page: the kernel does not tell reads from
    writes there).

    ``obj`` is any buffer: numpy array (views and strided arrays included), bytearray,
    memoryview, bytes, mmap... The first and last page may be shared with other data.
    """
    lib = _library()
    address, length = _extent(obj)
    if length == 0:
        return np.zeros(0, dtype=np.uint8)
    page = os.sysconf("SC_PAGE_SIZE")
    count = (address + length - 1) // page - address // page + 1
    states = np.zeros(count, dtype=np.uint8)
    got = lib.refmalloc_page_states(
        _ffi.cast("void *", address), length, _ffi.cast("unsigned char *", states.ctypes.data)
    )
    if got < 0:
        err = _ffi.errno
        raise OSError(err, f"refmalloc_page_states: {os.strerror(err)}")
    return states[: int(got)]


def pages_written(obj: Any) -> npt.NDArray[np.bool_]:
    """Per page of the memory under ``obj``: has the program written it?

    A numpy boolean array, one entry per page the buffer overlaps. For a large block
    built from reference pages, False means the page still shows the shared pattern page
    (or was never touched) and costs no memory.
    """
    written: npt.NDArray[np.bool_] = page_states(obj) == PAGE_WRITTEN
    return written
