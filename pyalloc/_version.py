"""The package version: the installed distribution's, or CMakeLists.txt's in a checkout."""

from __future__ import annotations

import re
from importlib import metadata
from pathlib import Path

DISTRIBUTION = "refmalloc"


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        pass
    # Not installed: running from a source checkout, whose CMakeLists.txt holds the version.
    cmakelists = Path(__file__).resolve().parent.parent / "CMakeLists.txt"
    try:
        text = cmakelists.read_text(encoding="utf-8")
    except OSError:
        return "0+unknown"
    match = re.search(r"project\(refmalloc\s+VERSION\s+([0-9][0-9A-Za-z.+-]*)", text)
    return match.group(1) if match else "0+unknown"


__version__: str = _version()
