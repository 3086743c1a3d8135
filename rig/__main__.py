"""python -m rig: boot the emulated arm64 machine and run one command in it."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from rig.fetch import fetch_kernel, find_qemu
from rig.host import RigError, progress
from rig.initramfs import GuestCommand
from rig.machine import run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rig",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Boot an emulated arm64 machine (QEMU virt, -cpu max, MTE unless --no-mte)\n"
            "with Debian's arm64 kernel and run one command in it, optionally with\n"
            "librefmalloc.so preloaded. The console is shown as it comes; the exit\n"
            "status is the command's (128+N for signal N, 2 for a rig failure)."
        ),
        epilog=(
            "example:\n"
            "  python -m rig --lib build-arm64/librefmalloc.so \\\n"
            "      --prog build-arm64/pattern --env REFMALLOC_OPTIONS=mte=1 \\\n"
            "      -- /bin/pattern calloc\n"
            "\n"
            "--lib puts the library at /lib/librefmalloc.so and sets LD_PRELOAD to it;\n"
            "--prog puts an arm64 executable at /bin/<its name>; without a guest command\n"
            "after --, the first --prog runs with no arguments. The loader and libraries\n"
            "that the programs need are added from /usr/aarch64-linux-gnu/lib. The kernel\n"
            "is cached in ${XDG_CACHE_HOME:-~/.cache}/refmalloc-rig/."
        ),
    )
    parser.add_argument("--lib", type=Path, help="arm64 librefmalloc.so to preload")
    parser.add_argument(
        "--prog",
        type=Path,
        action="append",
        default=[],
        help="arm64 executable for /bin/<name> (repeatable)",
    )
    parser.add_argument(
        "--file",
        action="append",
        default=[],
        metavar="HOST:GUEST",
        help="another file for the guest, e.g. data.bin:/tmp/data.bin",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="VAR=VALUE",
        help="environment of the command (repeatable)",
    )
    parser.add_argument(
        "--no-mte",
        dest="mte",
        action="store_false",
        help="a machine without MTE (-machine virt without mte=on)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds for the whole boot (default 600)"
    )
    parser.add_argument(
        "--qemu-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="one more argument for qemu-system-aarch64 (repeatable)",
    )
    parser.add_argument(
        "--workdir", type=Path, help="where initramfs.cpio and console.log go (default: a temp dir)"
    )
    parser.add_argument("--kernel", type=Path, help="vmlinuz to boot instead of the fetched one")
    parser.add_argument(
        "--qemu",
        type=Path,
        help="qemu-system-aarch64 to run (default: $REFMALLOC_RIG_QEMU, else the system's "
        "if >= 8.0, else one fetched from <codename>-backports)",
    )
    parser.add_argument("command", nargs="*", help="the guest argv, after --")
    args = parser.parse_args(argv)

    files: dict[str, Path] = {}
    env: dict[str, str] = {}
    if args.lib:
        files["/lib/librefmalloc.so"] = args.lib
        env["LD_PRELOAD"] = "/lib/librefmalloc.so"
    for prog in args.prog:
        files[f"/bin/{prog.name}"] = prog
    for spec in args.file:
        host, sep, guest = spec.partition(":")
        if not sep:
            parser.error(f"--file {spec}: expected HOST:GUEST")
        files[guest] = Path(host)
    for spec in args.env:
        key, sep, value = spec.partition("=")
        if not sep:
            parser.error(f"--env {spec}: expected VAR=VALUE")
        env[key] = value
    command = list(args.command)
    if not command:
        if not args.prog:
            parser.error("give a guest command after -- or at least one --prog")
        command = [f"/bin/{args.prog[0].name}"]

    cmd = GuestCommand("cli", command, env, timeout=0)
    try:
        with tempfile.TemporaryDirectory(prefix="rig-") as tmp:
            workdir = args.workdir or Path(tmp)
            start = time.monotonic()
            kernel = args.kernel or fetch_kernel()
            qemu = args.qemu or find_qemu()
            results = run(
                [cmd],
                files,
                mte=args.mte,
                workdir=workdir,
                kernel=kernel,
                timeout=args.timeout,
                extra_qemu_args=args.qemu_arg,
                echo=sys.stdout,
                qemu=qemu,
            )
            progress(f"total {time.monotonic() - start:.1f} s")
    except RigError as e:
        print(f"rig: error: {e}", file=sys.stderr)
        return 2
    r = results["cli"]
    if r.signal is not None:
        progress(f"{' '.join(command)}: killed by signal {r.signal}")
        return 128 + r.signal
    progress(f"{' '.join(command)}: exit {r.exit_code}")
    return r.exit_code or 0


if __name__ == "__main__":
    sys.exit(main())
