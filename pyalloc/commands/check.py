"""``refmalloc check [options] -- COMMAND [ARGS]...``."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any

import click

from pyalloc.library import lib_path
from pyalloc.options import BYTE, THRESHOLD

if TYPE_CHECKING:
    from pyalloc.check.runner import RunResult, RunSpec

#: Exit status of a usage or other error of check itself (pyalloc.check.USAGE_ERROR).
USAGE_ERROR = 2


class CheckError(click.ClickException):
    """Any error of check itself: exit 2, never 1 (which means "dependence found")."""

    exit_code = USAGE_ERROR


class Seconds(click.ParamType):
    """A positive number of seconds."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, float | int) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value))
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not number > 0 or number != number or number == float("inf"):
            self.fail(f"{value!r} is not a positive, finite number of seconds", param, ctx)
        return number


class Progress:
    """Which runs are going and the time elapsed, on stderr.

    On a terminal one status line is redrawn in place (and every half second, for the
    clock); elsewhere each run's start and end is a line of its own.
    """

    def __init__(self, stream: IO[str], tty: bool) -> None:
        self.stream = stream
        self.tty = tty
        self.start = time.monotonic()
        self.running: list[str] = []
        self.done = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        if tty:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def _elapsed(self) -> str:
        return f"{time.monotonic() - self.start:.1f}s"

    def _draw(self) -> None:
        going = ", ".join(self.running) if self.running else "comparing"
        self.stream.write(
            f"\r\x1b[Krefmalloc check: running {going}; {self.done} done; {self._elapsed()}"
        )
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                self._draw()

    def __call__(self, event: str, spec: RunSpec, result: RunResult | None) -> None:
        with self._lock:
            if event == "start":
                self.running.append(spec.label)
                line = f"refmalloc check: run {spec.label} started ({self._elapsed()})"
            else:
                if spec.label in self.running:
                    self.running.remove(spec.label)
                self.done += 1
                what = result.status.describe() if result is not None else "ended"
                seconds = f" in {result.seconds:.2f}s" if result is not None else ""
                line = f"refmalloc check: run {spec.label}: {what}{seconds} ({self._elapsed()})"
            if self.tty:
                self._draw()
            else:
                self.stream.write(line + "\n")
                self.stream.flush()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            if self.tty:
                self.stream.write("\r\x1b[K")
                self.stream.flush()


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
    "--use-after-free",
    "free_pattern",
    is_flag=True,
    help="Also fill freed blocks, with two free patterns, and report behaviour that "
    "depends on freed memory (use after free) as its own finding; in the second "
    "pattern's runs freed large blocks fault until reused (free_guard=1).",
)
@click.option(
    "--free-pattern",
    "free_pattern_alias",
    is_flag=True,
    hidden=True,
    help="Old name of --use-after-free.",
)
@click.option(
    "--locate",
    is_flag=True,
    help="Name the allocation call site(s) whose uninitialized bytes change the "
    "behaviour, by bisecting over call sites (a few more runs).",
)
@click.option(
    "--no-reads",
    is_flag=True,
    help="Do not run the read tracker. By default one more run goes with track_reads=1 "
    "and the threshold at a page (userfaultfd: root or vm.unprivileged_userfaultfd=1), "
    "and a read of a never-written page of a block is a finding (read-before-write), "
    "even when the outputs agree.",
)
@click.option(
    "--pattern",
    type=BYTE,
    metavar="BYTE",
    default="0xaa",
    show_default=True,
    help="Baseline pattern, 0x00-0xff or 0-255; the other runs use its complement, so "
    "every bit differs.",
)
@click.option(
    "--threshold",
    type=THRESHOLD,
    metavar="SIZE",
    help="REFMALLOC_OPTIONS threshold for every run (bytes, optional k/m/g/t suffix).",
)
@click.option(
    "--stdin",
    "stdin_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="File fed to each run's standard input ('-': read refmalloc's own stdin once). "
    "Default: /dev/null.",
)
@click.option(
    "--timeout",
    type=Seconds(),
    metavar="SECONDS",
    help="Seconds before a run is killed (a timeout counts as its exit status; when "
    "every run times out and nothing else is seen, the verdict is inconclusive).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    metavar="N",
    default=4,
    show_default=True,
    help="Runs started at once. A round has 3 or 4 runs; starting them together "
    "lets the kernel share the cores among them (1 runs them one by one).",
)
@click.option(
    "-q", "--quiet", is_flag=True, help="No progress on stderr (which run is going, the time)."
)
@click.argument(
    "command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]..."
)
def check_command(
    outputs: tuple[str, ...],
    as_json: bool,
    free_pattern: bool,
    free_pattern_alias: bool,
    locate: bool,
    no_reads: bool,
    pattern: int,
    threshold: int | None,
    stdin_path: str | None,
    timeout: float | None,
    jobs: int,
    quiet: bool,
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
        refmalloc check --json --use-after-free -- python3 script.py

    Ctrl-C or SIGTERM stops the check: every run is killed, exit 130 or 143.
    """
    from pyalloc.check import CheckConfig, run_check
    from pyalloc.check.report import render_json, render_text
    from pyalloc.check.runner import CannotStart, Interrupted

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
    progress = None if quiet else Progress(sys.stderr, sys.stderr.isatty())
    config = CheckConfig(
        argv=command,
        lib=lib,
        pattern=pattern,
        free_pattern=free_pattern or free_pattern_alias,
        locate=locate,
        reads=not no_reads,
        outputs=outputs,
        stdin=stdin,
        timeout=timeout,
        jobs=jobs,
        options=options,
        progress=progress,
    )
    try:
        try:
            result = run_check(config)
        finally:
            if progress is not None:
                progress.close()
    except CannotStart as exc:
        raise CheckError(str(exc)) from exc
    except Interrupted as exc:
        name = signal.Signals(exc.signum).name
        click.echo(f"refmalloc check: stopped by {name}; every run was killed", err=True)
        sys.exit(128 + exc.signum)
    click.echo(render_json(result) if as_json else render_text(result), nl=False)
    sys.exit(result.verdict)
