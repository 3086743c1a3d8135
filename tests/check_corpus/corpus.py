"""Build and locate the check corpus programs (imported by tests/test_check*.py)."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

CORPUS = Path(__file__).resolve().parent


def build(source: str, outdir: Path) -> str:
    """Compile a corpus C/C++ program with -g (cached by content); its path."""
    src = CORPUS / source
    cxx = src.suffix == ".cpp"
    compiler = "g++" if cxx else "gcc"
    flags = ["-g", "-O1", "-pthread", "-Wall", "-Wno-maybe-uninitialized"]
    if not cxx:
        flags.append("-Wno-use-after-free")
    digest = hashlib.sha256(src.read_bytes() + " ".join(flags).encode()).hexdigest()[:12]
    exe = outdir / f"{src.stem}-{digest}"
    if not exe.exists():
        tmp = exe.with_suffix(".tmp")
        cmd = [compiler, *flags, "-o", str(tmp), str(src)]
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stderr}")
        tmp.rename(exe)
    return str(exe)


def command(source: str, outdir: Path) -> list[str]:
    """The argv that runs a corpus program (Python scripts with this interpreter)."""
    if source.endswith(".py"):
        return [sys.executable, str(CORPUS / source)]
    return [build(source, outdir)]
