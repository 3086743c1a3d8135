"""Locate librefmalloc.so."""

from __future__ import annotations

import os
from pathlib import Path

LIB_NAME = "librefmalloc.so"
ENV_VAR = "REFMALLOC_LIB"
DISTRIBUTION = "refmalloc"

NOT_FOUND_MESSAGE = f"{LIB_NAME} not found: install with `pip install .` or set {ENV_VAR}"


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _installed_copy() -> Path | None:
    """The copy inside the installed distribution, if any.

    Differs from the package directory when this module was imported from a source
    checkout (``python -m pytest`` at the repository root puts the checkout first on
    sys.path) while the library was installed by ``pip install .``.
    """
    from importlib import metadata  # tens of milliseconds: only when searched

    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    return Path(str(dist.locate_file(f"pyalloc/{LIB_NAME}")))


def _checkout_build() -> Path | None:
    """<repo>/build/librefmalloc.so when this module lives in a source checkout."""
    root = _package_dir().parent
    if (root / "CMakeLists.txt").is_file() and (root / "allocator").is_dir():
        return root / "build" / LIB_NAME
    return None


def candidates() -> list[Path]:
    """The places searched when REFMALLOC_LIB is not set, in order."""
    found = [_package_dir() / LIB_NAME]
    for extra in (_installed_copy(), _checkout_build()):
        if extra is not None and extra not in found:
            found.append(extra)
    return found


def lib_path() -> str:
    """Absolute path of librefmalloc.so, as a string ready for LD_PRELOAD.

    Searched in order: the REFMALLOC_LIB environment variable (which must then name an
    existing file), the copy installed inside the pyalloc package, and
    ``<repo>/build/librefmalloc.so`` when running from a source checkout.

    Raises FileNotFoundError with a message saying how to fix it.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"{ENV_VAR}={env!r} does not name an existing file; "
                f"unset it to use the installed {LIB_NAME}"
            )
        return str(path.absolute())
    # The package's own copy first: the installed distribution is looked up only
    # when it is not there.
    first = _package_dir() / LIB_NAME
    if first.is_file():
        return str(first)
    for path in candidates():
        if path.is_file():
            return str(path)
    raise FileNotFoundError(NOT_FOUND_MESSAGE)
