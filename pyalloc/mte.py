"""Is arm64 memory tagging (MTE) available here, for ``refmalloc run --mte``?

The library checks the same thing itself (``getauxval(AT_HWCAP2) & HWCAP2_MTE``) and
refuses ``mte=1`` with a message on stderr; the CLI checks first so that a run that
cannot be tagged is a usage error, not a program that runs untagged.
"""

from __future__ import annotations

import platform
import struct
from pathlib import Path
from typing import Final

AT_HWCAP2: Final = 26
HWCAP2_MTE: Final = 1 << 18


def hwcap2(auxv: bytes) -> int:
    """AT_HWCAP2 from the bytes of /proc/PID/auxv (pairs of 64-bit words); 0 if absent."""
    for key, value in struct.iter_unpack("=QQ", auxv[: len(auxv) // 16 * 16]):
        if key == AT_HWCAP2:
            return int(value)
    return 0


def unavailable_reason(auxv_path: Path = Path("/proc/self/auxv")) -> str | None:
    """None when this machine can run tagged blocks, else why not (for a message)."""
    machine = platform.machine()
    if machine not in ("aarch64", "arm64"):
        return f"memory tagging needs an arm64 CPU with MTE; this machine is {machine}"
    try:
        caps = hwcap2(auxv_path.read_bytes())
    except OSError as exc:
        return f"cannot read {auxv_path}: {exc.strerror}"
    if not caps & HWCAP2_MTE:
        return "this arm64 CPU has no Memory Tagging Extension (HWCAP2_MTE is not set)"
    return None
