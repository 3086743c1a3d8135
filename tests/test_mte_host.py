"""mte=1 where there is no memory tagging (this x86_64 machine): the library refuses
the option with one clear line and behaves exactly as without it; `refmalloc run --mte`
is a usage error naming the reason. The tagged path itself runs on the emulated MTE
machine (tests/test_mte_rig.py)."""

import struct
import subprocess
import sys

import pytest
from rmhelpers import assert_ok, refmalloc_lines

from pyalloc import mte


def probe(build, run_prog, options):
    cp = assert_ok(run_prog(build("probe.c"), [131072], options=options))
    return dict(ln.split(" ", 1) for ln in cp.stdout.splitlines() if " " in ln), cp


def test_library_refuses_mte_without_the_hardware(build, run_prog):
    plain, _ = probe(build, run_prog, None)
    tagged, cp = probe(build, run_prog, "mte=1")
    assert refmalloc_lines(cp.stderr) == [
        "refmalloc: mte=1 refused: memory tagging needs an arm64 CPU with MTE; "
        "large blocks stay untagged"
    ], cp.stderr
    assert tagged == plain


def test_mte_off_says_nothing(build, run_prog):
    _, cp = probe(build, run_prog, "mte=0")
    assert cp.stderr == ""


def test_malformed_mte_value_names_the_key(build, run_prog):
    _, cp = probe(build, run_prog, "mte=2")
    lines = refmalloc_lines(cp.stderr)
    assert len(lines) == 1 and "'mte'" in lines[0] and "0 or 1" in lines[0], cp.stderr


def test_run_mte_is_a_usage_error_here():
    cp = subprocess.run(
        [sys.executable, "-m", "pyalloc", "run", "--mte", "--", "true"],
        capture_output=True, text=True,
    )
    assert cp.returncode == 2, cp
    assert "--mte" in cp.stderr and "arm64" in cp.stderr, cp.stderr


def auxv(*pairs):
    return b"".join(struct.pack("=QQ", k, v) for k, v in (*pairs, (0, 0)))


def test_hwcap2_is_read_from_auxv():
    assert mte.hwcap2(auxv((16, 0xFF), (mte.AT_HWCAP2, mte.HWCAP2_MTE | 1))) == (
        mte.HWCAP2_MTE | 1
    )
    assert mte.hwcap2(auxv((16, 0xFF))) == 0
    assert mte.hwcap2(b"") == 0


@pytest.mark.parametrize(
    "caps,expected",
    [(mte.HWCAP2_MTE, None), (0, "no Memory Tagging Extension")],
)
def test_arm64_machines_are_judged_by_hwcap2(tmp_path, monkeypatch, caps, expected):
    monkeypatch.setattr(mte.platform, "machine", lambda: "aarch64")
    path = tmp_path / "auxv"
    path.write_bytes(auxv((mte.AT_HWCAP2, caps)))
    reason = mte.unavailable_reason(path)
    if expected is None:
        assert reason is None
    else:
        assert reason is not None and expected in reason
    assert "cannot read" in (mte.unavailable_reason(tmp_path / "missing") or "")
