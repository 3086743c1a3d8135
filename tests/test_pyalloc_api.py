"""The in-process API: pyalloc.active(), stats(), pages_written(), page_states(), lib_path().

Each check runs in a fresh Python started under the real library (LD_PRELOAD,
PYTHONMALLOC=malloc), or without it for the error paths.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rmhelpers import REPO, clean_env

import pyalloc
from pyalloc import api, tables

TIMEOUT = 120


def python(code: str, preload: str | None, **env: str) -> subprocess.CompletedProcess[str]:
    extra: dict[str, str] = dict(env)
    if preload is not None:
        extra.update(LD_PRELOAD=preload, PYTHONMALLOC="malloc")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=clean_env(extra),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
        cwd=REPO,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    return result.stdout


def header_fields(name: str) -> list[str]:
    text = (REPO / "allocator" / "include" / "refmalloc.h").read_text()
    body = re.search(rf"struct {name} \{{(.*?)\n\}};", text, re.S)
    assert body is not None
    return re.findall(r"^\s*[\w ]+?[\s*](\w+);", body.group(1), re.M)


def test_cdef_matches_the_header() -> None:
    # The stats fields come from refmalloc.h's REFMALLOC_STATS list (test_config_unit
    # checks that reading against the compiler's); the cdef is built from them.
    assert ("version", *(stat.name for stat in tables.stats())) == api.STATS_FIELDS
    stats = re.search(r"struct refmalloc_stats \{(.*?)\};", api.CDEF, re.S)
    assert stats is not None
    assert tuple(re.findall(r"uint64_t (\w+);", stats.group(1))) == api.STATS_FIELDS
    assert [f.name for f in dataclasses.fields(api.Stats)] == list(api.STATS_FIELDS[1:])
    info = re.search(r"struct refmalloc_block_info \{(.*?)\};", api.CDEF, re.S)
    assert info is not None
    assert re.findall(r"(\w+);", info.group(1)) == header_fields("refmalloc_block_info")
    header = (REPO / "allocator" / "include" / "refmalloc.h").read_text()
    for decl in re.findall(
        r"^(?:int|long|unsigned char|const char \*)\s*refmalloc_\w+\(.*?\);", api.CDEF, re.M
    ):
        assert " ".join(decl.split()) in " ".join(header.split()), decl


def test_not_loaded_is_a_clear_error() -> None:
    out = ok(
        python(
            """
            import numpy, pyalloc
            print(pyalloc.active())
            for call in (pyalloc.stats, pyalloc.pattern, lambda: pyalloc.pages_written(b"x")):
                try:
                    call()
                except pyalloc.NotLoadedError as exc:
                    print(exc)
            """,
            preload=None,
        )
    )
    lines = out.splitlines()
    assert lines[0] == "False"
    assert len(lines) == 4
    for line in lines[1:]:
        assert line.startswith("refmalloc is not loaded in this process")
        assert "refmalloc run" in line


def test_version_outside_refmalloc_is_pyalloc_version() -> None:
    """pyalloc.version() raised NotLoadedError outside refmalloc before."""
    out = ok(python("import pyalloc\nprint(pyalloc.version(), pyalloc.__version__)", preload=None))
    got, package = out.split()
    assert got == package


def test_loaded_but_not_preloaded(lib: str) -> None:
    """dlopen'ed after start-up, the library does not serve malloc: not active, and said so."""
    out = ok(
        python(
            f"""
            import ctypes, pyalloc
            ctypes.CDLL({lib!r}, mode=ctypes.RTLD_GLOBAL)
            print(pyalloc.active())
            try:
                pyalloc.stats()
            except pyalloc.NotLoadedError as exc:
                print(exc)
            """,
            preload=None,
        )
    )
    active, message = out.splitlines()
    assert active == "False"
    assert "malloc comes from" in message and "LD_PRELOAD" in message


def test_stats_pattern_version(lib: str) -> None:
    out = ok(
        python(
            """
            import json, dataclasses, pyalloc
            before = pyalloc.stats()
            blocks = [bytearray(1 << 20) for _ in range(3)]
            after = pyalloc.stats()
            print(json.dumps({
                "active": pyalloc.active(),
                "pattern": pyalloc.pattern(),
                "version": pyalloc.version(),
                "type": type(after).__name__,
                "frozen": dataclasses.is_dataclass(after),
                "large": after.large_allocs - before.large_allocs,
                "small": after.small_allocs > 0,
                "dict": list(after.as_dict()) == [f.name for f in dataclasses.fields(after)],
            }))
            """,
            preload=lib,
            REFMALLOC_OPTIONS="pattern=0x5c",
        )
    )
    data = json.loads(out)
    assert data == {
        "active": True,
        "pattern": 0x5C,
        "version": pyalloc.__version__,
        "type": "Stats",
        "frozen": True,
        "large": 3,
        "small": True,
        "dict": True,
    }


def test_stats_match_the_report(lib: str, tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    ok(
        python(
            f"""
            import json, pyalloc
            s = pyalloc.stats()
            pyalloc.write_report({str(report)!r})
            try:
                pyalloc.write_report({str(report)!r})
            except FileExistsError:
                print("exists")
            """,
            preload=lib,
        )
    )
    data = json.loads(report.read_text())
    assert sorted(data["stats"]) == sorted(f.name for f in dataclasses.fields(api.Stats))


def test_pages_written(lib: str) -> None:
    out = ok(
        python(
            """
            import json, mmap, os
            import numpy as np
            import pyalloc
            page = os.sysconf("SC_PAGE_SIZE")
            a = np.empty(64 * page // 8, np.float64)   # a large block: reference pages
            fresh = pyalloc.pages_written(a)
            a[: 3 * page // 8] = 1.0                   # write 3 pages
            a[-1] = 2.0                                # and the last one
            _ = a[10 * page // 8]                      # a read copies nothing
            written = pyalloc.pages_written(a)
            states = pyalloc.page_states(a)
            b = bytearray(8 * page)                    # filled by memset in the library
            m = mmap.mmap(-1, 4 * page)                # anonymous, never touched
            print(json.dumps({
                "dtype": str(written.dtype),
                "len": len(written),
                "fresh": int(fresh.sum()),
                "written": np.flatnonzero(written).tolist(),
                "read_page": int(states[10]),
                # Read faults map up to 16 neighbouring pattern pages (fault-around):
                # page 40 is far enough from page 10 to stay untouched.
                "untouched": int(states[40]),
                "view": pyalloc.pages_written(a[: 2 * page // 8]).tolist(),
                "strided": len(pyalloc.pages_written(a[::page // 8])),
                "memoryview": pyalloc.pages_written(memoryview(a)[page // 8 : page // 4]).tolist(),
                "bytearray": bool(pyalloc.pages_written(b).all()),
                "mmap": pyalloc.page_states(m).tolist(),
                "empty": len(pyalloc.pages_written(bytearray())),
            }))
            try:
                pyalloc.pages_written(42)
            except TypeError as exc:
                print(exc)
            """,
            preload=lib,
        )
    )
    first, message = out.splitlines()
    data = json.loads(first)
    assert data["dtype"] == "bool"
    pages = data["len"]
    assert pages in (64, 65)  # one more when the array does not start on a page
    assert data["fresh"] == 0
    aligned = pages == 64
    expected = [0, 1, 2, pages - 1] if aligned else [0, 1, 2, 3, pages - 1]
    assert data["written"] == expected
    assert data["read_page"] == api.PAGE_PATTERN
    assert data["untouched"] == api.PAGE_UNTOUCHED
    assert data["view"] == [True] * (2 if aligned else 3)
    assert data["strided"] in (64, pages)
    assert all(data["memoryview"])
    assert data["bytearray"] is True
    assert data["mmap"] == [api.PAGE_UNTOUCHED] * 4
    assert data["empty"] == 0
    assert "needs a buffer" in message and "int" in message


def test_pages_written_in_shared_anonymous_memory(lib: str) -> None:
    # issue 15 item 10: the pagemap shows shared memory (shmem) pages as file pages, which
    # page_states took for the pattern page: the written pages of mmap.mmap(-1, n) (a
    # MAP_SHARED anonymous mapping) reported False. In a shared mapping no page is the
    # pattern page; a touched page is the mapping's own memory, written or only read
    # (a read of a hole allocates a page there too, and the pagemap cannot tell them
    # apart), as any touched page of private anonymous memory.
    out = ok(
        python(
            """
            import json, mmap, os
            import pyalloc
            page = os.sysconf("SC_PAGE_SIZE")
            m = mmap.mmap(-1, 8 * page)      # MAP_SHARED | MAP_ANONYMOUS
            m[0] = 1                         # written: pages 0, 1 and 5
            m[page : page + 3] = b"abc"
            m[5 * page + 7] = 9
            _ = m[3 * page]                  # read only: page 3
            shared = pyalloc.page_states(m).tolist()
            p = mmap.mmap(-1, 4 * page, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
            p[page] = 1                      # private anonymous, for comparison
            print(json.dumps({
                "shared": shared,
                "written": pyalloc.pages_written(m).tolist(),
                "private": pyalloc.page_states(p).tolist(),
            }))
            """,
            preload=lib,
        )
    )
    data = json.loads(out)
    u, w = api.PAGE_UNTOUCHED, api.PAGE_WRITTEN
    assert data["shared"] == [w, w, u, w, u, w, u, u]
    assert data["written"] == [True, True, False, True, False, True, False, False]
    assert data["private"] == [u, w, u, u]


def test_lib_path_is_the_loaded_library(lib: str) -> None:
    out = ok(
        python(
            "import os, pyalloc; from pyalloc import api\n"
            "print(os.path.samefile(api.loaded_path(), pyalloc.lib_path()))",
            preload=lib,
            REFMALLOC_LIB=lib,
        )
    )
    assert out.strip() == "True"


def test_import_is_lazy() -> None:
    """`import pyalloc` (the CLI, the pytest plugin) does not load numpy or cffi."""
    out = ok(
        python(
            "import sys, pyalloc, pyalloc.cli, pyalloc.pytest_plugin\n"
            "print('numpy' in sys.modules, 'cffi' in sys.modules)",
            preload=None,
        )
    )
    assert out.split() == ["False", "False"]
    assert "pages_written" in dir(pyalloc)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pyalloc.nope  # noqa: B018
