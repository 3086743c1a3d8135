"""``refmalloc check [options] -- COMMAND [ARGS]...``."""

from __future__ import annotations

import os
import shutil
import sys

import click

from pyalloc.check import USAGE_ERROR, CheckConfig, run_check
from pyalloc.check.report import render_json, render_text
from pyalloc.check.runner import CannotStart
from pyalloc.library import lib_path
from pyalloc.options import BYTE, THRESHOLD


class CheckError(click.ClickException):
    """Any error of check itself: exit 2, never 1 (which means "dependence found")."""

    exit_code = USAGE_ERROR


@click.command(
    "check",
    context_settings={"ignore_unknown_options": False, "allow_interspersed_args": False},
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    metavar="PATH",
    help="A file the command writes, compared between runs (repeatable); a directory "
    "compares every file in it. With --output the runs go one after another.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--free-pattern",
    is_flag=True,
    help="Also fill freed blocks, with two patterns, and report behaviour that "
    "depends on freed memory (use after free) as its own finding; in the second "
    "pattern's runs freed large blocks fault until reused (free_guard=1).",
)
@click.option(
    "--locate",
    is_flag=True,
    help="Name the allocation call site(s) whose uninitialized bytes change the "
    "behaviour, by bisecting over call sites (a few more runs).",
)
@click.option(
    "--pattern",
    type=BYTE,
    default=0xAA,
    show_default="0xaa",
    help="Baseline pattern; the other run uses its complement, so every bit differs.",
)
@click.option("--threshold", type=THRESHOLD, help="REFMALLOC_OPTIONS threshold for every run.")
@click.option(
    "--stdin",
    "stdin_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File fed to each run's standard input ('-': read refmalloc's own stdin once). "
    "Default: /dev/null.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    help="Seconds before a run is killed (a timeout counts as its exit status).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Runs started at once. A round has 3 or 4 runs; starting them together "
    "lets the kernel share the cores among them (1 runs them one by one).",
)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def check_command(
    outputs: tuple[str, ...],
    as_json: bool,
    free_pattern: bool,
    locate: bool,
    pattern: int,
    threshold: int | None,
    stdin_path: str | None,
    timeout: float | None,
    jobs: int,
    command: tuple[str, ...],
) -> None:
    """Does COMMAND's behaviour depend on uninitialized heap memory?

    Runs COMMAND under refmalloc with two fill patterns where every bit differs
    (0xaa and 0x55), the baseline twice, with address-space randomisation off, and
    compares the exit status or signal, stdout, stderr and the --output files. What
    varies between the two baseline runs is the program's own nondeterminism and is
    left out (per stream, per line where the line count is stable). A difference is
    confirmed by one more run of each pattern before it is reported.

    \b
    Exit status: 0 clean, 1 dependence found, 3 inconclusive (the program is
    nondeterministic and nothing deterministic is left), 2 usage or other error.

    \b
        refmalloc check -- ./prog input.txt
        refmalloc check --locate --output out.bin -- ./prog -o out.bin
        refmalloc check --json --free-pattern -- python3 script.py
    """
    try:
        lib = lib_path()
    except FileNotFoundError as exc:
        raise CheckError(str(exc)) from exc
    name = command[0]
    if os.sep not in name and shutil.which(name) is None:
        raise CheckError(f"command not found: {name}")
    if os.sep in name and not os.access(name, os.X_OK):
        raise CheckError(f"cannot execute {name}: not an executable file")
    stdin: bytes | None = None
    if stdin_path == "-":
        stdin = sys.stdin.buffer.read()
    elif stdin_path is not None:
        try:
            with open(stdin_path, "rb") as handle:
                stdin = handle.read()
        except OSError as exc:
            raise CheckError(f"--stdin {stdin_path}: {exc.strerror or exc}") from exc
    options: dict[str, object] = {}
    if threshold is not None:
        options["threshold"] = threshold
    config = CheckConfig(
        argv=command,
        lib=lib,
        pattern=pattern,
        free_pattern=free_pattern,
        locate=locate,
        outputs=outputs,
        stdin=stdin,
        timeout=timeout,
        jobs=jobs,
        options=options,
    )
    try:
        result = run_check(config)
    except CannotStart as exc:
        raise CheckError(str(exc)) from exc
    click.echo(render_json(result) if as_json else render_text(result), nl=False)
    sys.exit(result.verdict)
