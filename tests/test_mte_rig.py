"""mte=1 on an emulated arm64 machine with MTE (the rig package boots it under
qemu-system-aarch64): the cross-built librefmalloc.so is preloaded into
tests/mte/guest/mte_tests.c, whose cases check through tagged pointers that a block
reads the pattern, a write copies the page and keeps the tag, wrong-tag and untagged
accesses, overflows into the next block or past the size, uses after free and stale
pointers fault with SEGV_MTESERR, realloc keeps content and tag, fork and threads work, and the
eager fallback is tagged too. A second boot, without MTE, shows the option refused.

qemu-user cannot stand in: it ignores PROT_MTE on file mappings."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rmhelpers import REPO, TESTS_DIR

import rig

# One worker of a parallel run takes the whole module: its module fixtures (the arm64
# build, two boots of the emulated machine) are made once, not once per worker. Guest
# time counts instructions, so a busy host changes no verdict here.
pytestmark = pytest.mark.xdist_group("mte-rig")

GUEST_LIB = "/lib/librefmalloc.so"
GUEST_TESTS = "/bin/mte_tests"
GUEST_PROBE = "/bin/probe_mte"

TAGGED = [
    "has_mte",
    "checks_on_for_the_process",
    "pattern_through_tagged_pointer",
    "write_copies_page_and_keeps_tag",
    "wrong_tag_faults",
    "untagged_pointer_faults",
    "overflow_into_next_block_faults",
    "underflow_into_previous_block_faults",
    "overflow_past_size_faults",
    "usable_size_follows_size",
    "use_after_free_faults",
    "reuse_gets_fresh_tag",
    "stale_pointer_after_reuse_faults",
    "double_free_after_reuse_aborts",
    "realloc_keeps_content_and_tag",
    "calloc_is_zero_and_tagged",
    "aligned_block_is_tagged",
    "small_blocks_untagged",
    "fork_child_shares_tags",
    "wrong_tag_in_thread_faults",
]

# name -> (REFMALLOC_OPTIONS or None, extra environment, cases)
CONFIGS: dict[str, tuple[str | None, dict[str, str], list[str]]] = {
    "mte": ("mte=1", {}, TAGGED),
    # Moving reallocs by copying the written pages (mremap off), as on kernels
    # before 6.17 for blocks of several mappings.
    "mte-copy": ("mte=1,mremap=0", {}, ["realloc_keeps_content_and_tag",
                                        "calloc_is_zero_and_tagged"]),
    # The eager fallback: anonymous PROT_MTE memory, tags and pattern stored up front.
    "mte-eager": ("mte=1,refpages=0", {}, [
        "eager_block_is_tagged_and_filled", "wrong_tag_faults",
        "overflow_into_next_block_faults", "underflow_into_previous_block_faults",
        "overflow_past_size_faults", "usable_size_follows_size",
        "realloc_keeps_content_and_tag", "double_free_after_reuse_aborts",
    ]),
    # Freed blocks give their range back at once.
    "mte-no-cache": ("mte=1,cache=0", {}, ["growth_never_touches_same_tag"]),
    "mte-free-pattern": ("mte=1,free_pattern=0xdd", {}, [
        "use_after_free_faults", "pattern_through_tagged_pointer",
    ]),
    # glibc's own tagging chooses asynchronous checks first: refmalloc keeps them.
    "mte-glibc-tagging": ("mte=1", {"GLIBC_TUNABLES": "glibc.mem.tagging=1"}, [
        "program_mode_kept", "pattern_through_tagged_pointer",
    ]),
    "no-option": (None, {}, ["untagged_blocks"]),
}
UNTAGGED_MACHINE = {"refused": ("mte=1", {}, ["has_no_mte", "untagged_blocks"])}

REFUSAL = ("refmalloc: mte=1 refused: this CPU has no Memory Tagging Extension "
           "(HWCAP2_MTE); large blocks stay untagged")


@pytest.fixture(scope="module")
def arm64_build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("mte-arm64")
    rig.build_library(build)
    rig.cross_compile(
        TESTS_DIR / "mte" / "guest" / "mte_tests.c", build / "mte_tests",
        extra_args=("-O1", "-fno-builtin", "-Wall", "-Wextra", "-Werror",
                    "-Wno-use-after-free", "-pthread"),
    )
    rig.cross_compile(TESTS_DIR / "mte" / "probe_mte.c", build / "probe_mte",
                      extra_args=("-Wall", "-Wextra", "-Werror"))
    return build


def boot(build: Path, configs, *, mte: bool, workdir: Path) -> dict[str, rig.CommandResult]:
    # First the machine itself, without refmalloc: does it keep tags per granule
    # through memfd, sealing and copy-on-write (QEMU 7.2 does not)?
    commands = [rig.GuestCommand("probe", [GUEST_PROBE, "mte" if mte else "nomte"], {})]
    for name, (options, extra, cases) in configs.items():
        env = {"LD_PRELOAD": GUEST_LIB, **extra}
        if options is not None:
            env["REFMALLOC_OPTIONS"] = options
        commands.append(rig.GuestCommand(name, [GUEST_TESTS, *cases], env, timeout=240))
    files = {GUEST_LIB: build / "librefmalloc.so", GUEST_TESTS: build / "mte_tests",
             GUEST_PROBE: build / "probe_mte"}
    return rig.run(commands, files, mte=mte, workdir=workdir, timeout=900)


@pytest.fixture(scope="module")
def mte_machine(arm64_build, tmp_path_factory):
    return boot(arm64_build, CONFIGS, mte=True, workdir=tmp_path_factory.mktemp("rig-mte"))


@pytest.fixture(scope="module")
def plain_machine(arm64_build, tmp_path_factory):
    return boot(arm64_build, UNTAGGED_MACHINE, mte=False,
                workdir=tmp_path_factory.mktemp("rig-plain"))


def verdict(result: rig.CommandResult, case: str) -> str:
    """The case's own lines: the child's '#' notes and its ok/not ok line."""
    lines, mine = [], []
    for line in result.output:
        lines.append(line)
        m = re.match(r"(ok|not ok) (\w+)", line)
        if m:
            if m.group(2) == case:
                mine = lines
            lines = []
    return "\n".join(mine)


def assert_case(results: dict[str, rig.CommandResult], config: str, case: str) -> str:
    result = results[config]
    text = verdict(result, case)
    assert text.splitlines() and text.splitlines()[-1] == f"ok {case}", (
        f"{config}/{case}:\n{text or result.text}"
    )
    return text


@pytest.mark.parametrize("machine", ["mte_machine", "plain_machine"])
def test_the_emulated_machine_itself(request, machine):
    probe = request.getfixturevalue(machine)["probe"]
    assert probe.exit_code == 0 and not any(
        line.startswith("not ok") for line in probe.output), probe.text


@pytest.mark.parametrize(
    "config,case", [(c, case) for c, (_, _, cases) in CONFIGS.items() for case in cases]
)
def test_on_mte_machine(mte_machine, config, case):
    assert_case(mte_machine, config, case)


def test_every_command_passed_whole(mte_machine):
    """No case failed outside its own line (exit status = failed cases)."""
    for name, result in mte_machine.items():
        assert result.exit_code == 0, f"{name}: exit {result.exit_code} signal {result.signal}"


def test_faults_are_tag_check_faults(mte_machine):
    for case in ("wrong_tag_faults", "use_after_free_faults",
                 "overflow_into_next_block_faults", "overflow_past_size_faults"):
        assert "SIGSEGV si_code=9 " in assert_case(mte_machine, "mte", case), case


def test_stale_free_is_named(mte_machine):
    text = assert_case(mte_machine, "mte", "double_free_after_reuse_aborts")
    assert "refmalloc: free(): invalid pointer 0x" in text
    assert "memory tag is not the block's" in text


def test_refused_without_mte(plain_machine):
    for case in ("has_no_mte", "untagged_blocks"):
        assert_case(plain_machine, "refused", case)
    # Printed once, by the library starting in the test program itself.
    output = plain_machine["refused"].output
    assert [line for line in output if line.startswith("refmalloc")] == [REFUSAL], output


def test_bench_mte_runs(arm64_build, tmp_path):
    """python -m bench.mte (README's table) end to end on a small block: both boots, every
    configuration, and the memory it reports (not the times) as the design says."""
    out = tmp_path / "mte.json"
    cp = subprocess.run(
        [sys.executable, "-m", "bench.mte", "--repeat", "1", "--mib", "16",
         "--lib", str(arm64_build / "librefmalloc.so"), "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    assert cp.returncode == 0, cp.stderr[-3000:]
    assert "| refmalloc mte=1 |" in cp.stdout and "| stg |" in cp.stdout, cp.stdout
    data = json.loads(out.read_text())
    timed = {name: rows[0] for name, rows in data["timed"].items()}
    assert timed["refmalloc mte=1"]["tag"] and timed["stg"]["tag"]
    assert not timed["refmalloc"]["tag"]
    # 1% of 16 MiB written: pre-tagged blocks cost what is written, STG all of it.
    assert timed["refmalloc mte=1"]["anon_kib"] < timed["stg"]["anon_kib"] / 2
    assert timed["stg"]["anon_kib"] >= 16 * 1024
    assert all(rows[0]["ns"] > 0 for rows in data["instructions"].values())
