"""Cost of `refmalloc check` against one plain run of the same program.

Builds a small deterministic C program (allocation-heavy: small blocks, a few large
ones, some CPU work; about 0.5 s), then times, median of --repeat rounds:

- plain:  the program alone (no refmalloc);
- under:  the program alone under refmalloc (LD_PRELOAD), for reference;
- check:  `refmalloc check -- prog` end to end (Python start-up, 3 runs started
          together on the available cores, comparison), which is what a user waits for.

Prints both and the ratio (the issue's target: about 3.5x at most).

    python bench/check_cost.py [--repeat 5] [--jobs 4]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from pyalloc.library import lib_path  # noqa: E402

PROGRAM = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 200;
    unsigned long sum = 0;
    for (long r = 0; r < rounds; r++) {
        char *blocks[512];
        for (int i = 0; i < 512; i++) {
            blocks[i] = malloc(16 + (size_t)(i * 7 % 500));
            memset(blocks[i], i, 16);
            sum += (unsigned char)blocks[i][3];
        }
        for (int i = 0; i < 512; i++)
            free(blocks[i]);
        unsigned char *big = malloc(1u << 20);
        for (size_t i = 0; i < (1u << 20); i += 64)
            big[i] = (unsigned char)(i + r);
        for (int pass = 0; pass < 8; pass++)
            for (size_t i = 0; i < (1u << 20); i += 64)
                sum = sum * 31 + big[i] + (unsigned long)pass;
        free(big);
    }
    printf("%lu\n", sum);
    return 0;
}
"""


_cpu: list[float] = []


def _time(argv: list[str], env: dict[str, str]) -> float:
    """Wall seconds of one command; its CPU seconds (children) go to _cpu."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _cpu.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--jobs", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=0, help="program rounds (0: ~0.5 s)")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "REFMALLOC_OPTIONS")}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp, "work.c")
        src.write_text(PROGRAM)
        exe = str(Path(tmp, "work"))
        subprocess.run(["gcc", "-O2", "-o", exe, str(src)], check=True)
        rounds = args.rounds
        if rounds == 0:
            one = _time([exe, "100"], env)
            rounds = max(10, int(100 * 0.5 / max(one, 1e-3)))
        prog = [exe, str(rounds)]
        check = [sys.executable, "-m", "pyalloc", "check", "--jobs", str(args.jobs), "--", *prog]
        verdict = subprocess.run(check, env=env, capture_output=True, text=True)
        if verdict.returncode != 0:
            print(verdict.stdout, verdict.stderr, file=sys.stderr)
            print("check did not find the program clean", file=sys.stderr)
            return 1
        preload = {**env, "LD_PRELOAD": lib_path()}
        plain, under, checked = [], [], []
        cpu_plain, cpu_check = [], []
        for _ in range(args.repeat):
            plain.append(_time(prog, env))
            cpu_plain.append(_cpu[-1])
            under.append(_time(prog, preload))
            checked.append(_time(check, env))
            cpu_check.append(_cpu[-1])
    p, u, c = statistics.median(plain), statistics.median(under), statistics.median(checked)
    cores = len(os.sched_getaffinity(0))
    print(f"cpus available: {cores}, check --jobs {args.jobs}")
    print(f"plain run:        {p:.3f} s (median of {args.repeat})")
    print(f"one run under refmalloc: {u:.3f} s ({u / p:.2f}x)")
    print(f"load average before: {load:.2f}")
    print(f"refmalloc check:  {c:.3f} s (median of {args.repeat}; 3 runs + comparison)")
    print(f"ratio check/plain: {c / p:.2f}x (wall time)")
    cp, cc = statistics.median(cpu_plain), statistics.median(cpu_check)
    print(f"CPU time: plain {cp:.3f} s, check {cc:.3f} s: {cc / cp:.2f}x; on otherwise idle")
    print(f"  cores the wall-time ratio approaches CPU ratio / cores = {cc / cp / cores:.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f} (other processes on the cores inflate it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
