"""The C layers see only what is below them (README: Architecture).

allocator/base (the OS calls, diagnostics, options, stats, descriptors) includes
nothing above it; allocator/src, the core, never includes preload/; preload/ reaches
the core only through allocator/include (refmalloc.h and the refmalloc_internal.h
facade) and the base. The include paths of CMakeLists.txt enforce the last for the
compiler; this reads the sources so that a header moved to the wrong place or an
include path widened is caught too. And the libc services the OS layer wraps
(getenv, sched_yield, abort, dladdr) are called from allocator/base/os.c only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rmhelpers import REPO

BASE = REPO / "allocator" / "base"
CORE = REPO / "allocator" / "src"
PUBLIC = REPO / "allocator" / "include"
PRELOAD = REPO / "preload"

# Each layer's directory and the directories its quoted includes may come from.
SEES = {
    BASE: (BASE, PUBLIC),
    CORE: (CORE, BASE, PUBLIC),
    PRELOAD: (PRELOAD, BASE, PUBLIC),
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
WRAPPED = re.compile(r"\b(getenv|sched_yield|abort|dladdr1?)\s*\(")


def sources(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.[ch]"))


def test_the_layers_exist_and_hold_code() -> None:
    for directory in SEES:
        assert sources(directory), directory


@pytest.mark.parametrize("layer", list(SEES), ids=lambda p: str(p.relative_to(REPO)))
def test_includes_come_from_the_layer_or_below(layer: Path) -> None:
    wrong = []
    for src in sources(layer):
        for name in INCLUDE.findall(src.read_text()):
            homes = [d for d in SEES[layer] if (d / name).exists()]
            if not homes:
                wrong.append(f"{src.relative_to(REPO)}: {name}")
    assert not wrong, "includes from outside the layer's reach:\n" + "\n".join(wrong)


def test_the_public_facade_includes_nothing_private() -> None:
    for header in sources(PUBLIC):
        for name in INCLUDE.findall(header.read_text()):
            assert (PUBLIC / name).exists(), f"{header.name} includes {name}"


def test_libc_services_are_called_from_the_os_layer_only() -> None:
    calls = []
    for layer in SEES:
        for src in sources(layer):
            if src == BASE / "os.c":
                continue
            for number, line in enumerate(src.read_text().splitlines(), 1):
                code = line.split("//")[0]
                if code.lstrip().startswith(("*", "/*")):
                    continue
                if WRAPPED.search(code):
                    calls.append(f"{src.relative_to(REPO)}:{number}: {line.strip()}")
    assert not calls, "call through os.h instead:\n" + "\n".join(calls)
