"""Pre-tagged large blocks (mte=1) against tagging them up front, on the emulated MTE
machine of the rig package (issue 7's measurement).

Each configuration allocates a block of --mib MiB (default 256) and writes one byte in
--percent % of its pages (default 1), timed from before the allocation to after the
writes (bench/programs/mte_prefault.c):

    refmalloc mte=1   malloc under refmalloc: tagged reference pages, nothing stored
    refmalloc         malloc under refmalloc without mte: untagged reference pages
    glibc             malloc without refmalloc (mmap; neither tags nor pattern)
    stg               mmap PROT_MTE, then STG over every granule (tags only)
    stgp              mmap PROT_MTE, then STGP (tags and the pattern byte together)
    anon              mmap without MTE, nothing stored (the floor)

Two boots, each running every configuration --repeat times, order rotated per round:
one timed by the guest's clock under plain emulation, one under `-icount shift=0`,
where QEMU advances the guest clock by exactly 1 ns per instruction executed, so the
same clock reads instructions (user and kernel; the emulated CPU has no usable
performance counter). Emulated time says little about real hardware: STG costs one
emulated instruction each here, whatever it costs on silicon; the instruction counts
and the memory figures (anonymous memory and PSS from smaps_rollup) carry over better.

    python -m bench.mte [--repeat 5] [--mib 256] [--percent 1] [--lib LIB] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

import rig

REPO = Path(__file__).resolve().parent.parent

GUEST_LIB = "/lib/librefmalloc.so"
GUEST_PROG = "/bin/mte_prefault"

# name -> (mode of mte_prefault, environment)
CONFIGS: dict[str, tuple[str, dict[str, str]]] = {
    "refmalloc mte=1": ("malloc", {"LD_PRELOAD": GUEST_LIB, "REFMALLOC_OPTIONS": "mte=1"}),
    "refmalloc": ("malloc", {"LD_PRELOAD": GUEST_LIB}),
    "glibc": ("malloc", {}),
    "stg": ("stg", {}),
    "stgp": ("stgp", {}),
    "anon": ("anon", {}),
}
BASELINE = "stg"
RESULT = re.compile(
    r"RESULT \S+ ns=(\d+) instructions=\S+ anon_kib=(-?\d+) pss_kib=(-?\d+) "
    r"tag=(\d+)"
)


def measure(
    lib: Path, prog: Path, args: argparse.Namespace, workdir: Path, icount: bool
) -> dict[str, list[dict[str, int]]]:
    names = list(CONFIGS)
    commands, config_of = [], {}
    for rep in range(args.repeat):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            mode, env = CONFIGS[name]
            command = f"{name.replace(' ', '_').replace('=', '')}.{rep}"
            config_of[command] = name
            commands.append(
                rig.GuestCommand(
                    command, [GUEST_PROG, mode, str(args.mib), str(args.percent)], env, timeout=600
                )
            )
    extra = ["-icount", "shift=0"] if icount else []
    results = rig.run(
        commands,
        {GUEST_LIB: lib, GUEST_PROG: prog},
        mte=True,
        workdir=workdir / ("icount" if icount else "timed"),
        timeout=3000,
        extra_qemu_args=extra,
    )
    out: dict[str, list[dict[str, int]]] = {name: [] for name in names}
    for command in commands:
        name = config_of[command.name]
        result = results[command.name]
        found = [m for line in result.output if (m := RESULT.search(line))]
        if result.exit_code != 0 or not found:
            raise SystemExit(f"{command.name} failed:\n{result.text}")
        ns, anon, pss, tag = map(int, found[-1].groups())
        out[name].append({"ns": ns, "anon_kib": anon, "pss_kib": pss, "tag": tag})
    return out


def median(rows: list[dict[str, int]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def table(timed: dict, counted: dict) -> str:
    base_ns, base_ins = median(timed[BASELINE], "ns"), median(counted[BASELINE], "ns")
    lines = [
        "| configuration | emulated time | vs stg | instructions | vs stg | anonymous | PSS "
        "| tag |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in timed:
        ns, ins = median(timed[name], "ns"), median(counted[name], "ns")
        lines.append(
            f"| {name} | {ns / 1e6:.1f} ms | {ns / base_ns:.2f}x | {ins / 1e6:.1f} M "
            f"| {ins / base_ins:.3f}x | {median(timed[name], 'anon_kib') / 1024:.1f} MiB "
            f"| {median(timed[name], 'pss_kib') / 1024:.1f} MiB | "
            f"{'yes' if timed[name][0]['tag'] else 'no'} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds per boot (default 5)")
    parser.add_argument("--mib", type=int, default=256, help="block size in MiB (default 256)")
    parser.add_argument(
        "--percent", type=int, default=1, help="percentage of pages written (default 1)"
    )
    parser.add_argument("--lib", type=Path, help="arm64 librefmalloc.so (default: build one)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if not 1 <= args.mib <= 512 or not 0 <= args.percent <= 100 or args.repeat < 1:
        parser.error(
            "--mib must be 1-512 (the guest has 1 GiB), --percent 0-100, --repeat at least 1"
        )
    with tempfile.TemporaryDirectory(prefix="refmalloc-mte-bench-") as tmp:
        workdir = Path(tmp)
        print("bench/mte: building the arm64 library and program", file=sys.stderr)
        lib = args.lib or rig.build_library(workdir / "arm64")
        prog = rig.cross_compile(
            REPO / "bench" / "programs" / "mte_prefault.c",
            workdir / "mte_prefault",
            extra_args=("-Wall", "-Werror"),
        )
        timed = measure(lib, prog, args, workdir, icount=False)
        counted = measure(lib, prog, args, workdir, icount=True)
    print(
        f"{args.mib} MiB block, {args.percent}% of its pages written, medians of "
        f"{args.repeat} (emulated: qemu-system-aarch64 TCG, -cpu max, mte=on)\n"
    )
    print(table(timed, counted))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "args": vars(args) | {"lib": str(args.lib), "json": str(args.json)},
                    "timed": timed,
                    "instructions": counted,
                },
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
