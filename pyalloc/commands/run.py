"""``refmalloc run [options] -- COMMAND [ARGS]...``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

import click

from pyalloc.inject import child_env
from pyalloc.options import BYTE, BYTE_OR_OFF, SIZE

#: refmalloc itself failed (library missing, unusable environment), as for env(1).
EXIT_INTERNAL = 125
#: The command exists but could not be executed, as in a shell.
EXIT_CANNOT_EXECUTE = 126
#: The command was not found, as in a shell.
EXIT_NOT_FOUND = 127

# Signals a terminal sends to the whole foreground process group: the command gets
# them itself, so refmalloc ignores them while it waits, as a shell does.
_IGNORED_WHILE_WAITING = (signal.SIGINT, signal.SIGQUIT)
# Signals sent to refmalloc alone: passed on to the command.
_FORWARDED = (signal.SIGTERM, signal.SIGHUP)


def _error(message: str) -> None:
    click.echo(f"refmalloc: {message}", err=True)


def _check_report(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is None:
        return None
    path = os.path.abspath(value)
    if "," in path:
        raise click.BadParameter(
            f"{value!r}: REFMALLOC_OPTIONS cannot carry a path containing a comma", ctx, param
        )
    parent = os.path.dirname(path)
    if "%p" not in parent and not os.path.isdir(parent):
        raise click.BadParameter(f"directory {parent!r} does not exist", ctx, param)
    if "%p" not in path and os.path.lexists(path):
        raise click.BadParameter(
            f"{value!r} already exists; refmalloc never overwrites a report: "
            "remove it or choose another name",
            ctx,
            param,
        )
    # With %p the name is only known in the program (it expands to the pid there).
    return path


@contextmanager
def _signals_to(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """While waiting for ``proc``: ignore terminal signals, pass SIGTERM/SIGHUP on."""

    def forward(signum: int, frame: FrameType | None) -> None:
        if proc.returncode is None:
            proc.send_signal(signum)

    saved = {sig: signal.getsignal(sig) for sig in (*_IGNORED_WHILE_WAITING, *_FORWARDED)}
    try:
        for sig in _IGNORED_WHILE_WAITING:
            signal.signal(sig, signal.SIG_IGN)
        for sig in _FORWARDED:
            signal.signal(sig, forward)
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def run_program(argv: Sequence[str], env: dict[str, str]) -> int:
    """Run ``argv`` with the caller's standard streams; return a shell-style exit status.

    The command's own status, 128+N if signal N killed it, 127 if it was not found,
    126 if it could not be executed.
    """
    name = argv[0]
    try:
        # The signal dispositions are changed only after the child exists: an ignored
        # signal would stay ignored in the child across exec.
        proc = subprocess.Popen(list(argv), env=env)
    except FileNotFoundError:
        if os.sep in name and os.path.lexists(name):
            # The file is there, its interpreter or loader is not.
            _error(f"cannot execute {name}: bad interpreter or loader (No such file or directory)")
            return EXIT_CANNOT_EXECUTE
        _error(f"command not found: {name}")
        return EXIT_NOT_FOUND
    except PermissionError:
        _error(f"cannot execute {name}: permission denied")
        return EXIT_CANNOT_EXECUTE
    except OSError as exc:
        _error(f"cannot execute {name}: {exc.strerror or exc}")
        return EXIT_CANNOT_EXECUTE
    with _signals_to(proc):
        status = proc.wait()
    return 128 - status if status < 0 else status


@click.command(
    "run",
    context_settings={"allow_interspersed_args": False},
    epilog=(
        "Exit status: the command's own; 128+N if signal N killed it; 127 if the command "
        "was not found; 126 if it could not be executed; 125 if refmalloc itself failed "
        "(e.g. librefmalloc.so not found); 2 for a usage error."
    ),
)
@click.option(
    "--pattern",
    type=BYTE,
    metavar="BYTE",
    help="Fill byte of fresh blocks: 0x00-0xff or 0-255 (library default 0xaa).",
)
@click.option(
    "--free-pattern",
    type=BYTE_OR_OFF,
    metavar="BYTE|off",
    help="Fill freed small blocks with this byte (library default off).",
)
@click.option(
    "--threshold",
    type=SIZE,
    metavar="SIZE",
    help="Requests of at least SIZE are large blocks built from reference pages "
    "(library default 128k). SIZE: bytes, optional k/m/g/t suffix.",
)
@click.option(
    "--report",
    metavar="FILE",
    callback=_check_report,
    help="Write a JSON report to FILE when the program exits; %p in FILE expands to "
    "the pid. FILE must not exist yet.",
)
@click.option(
    "-v",
    "--verbose",
    count=True,
    help="Let the library report fallbacks and notable events on stderr; "
    "twice (-vv) for every large operation.",
)
@click.argument(
    "command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- COMMAND [ARGS]..."
)
@click.pass_context
def run_command(
    ctx: click.Context,
    pattern: int | None,
    free_pattern: int | str | None,
    threshold: int | None,
    report: str | None,
    verbose: int,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND with librefmalloc.so preloaded and return its exit status.

    Options not given here keep the values set in the REFMALLOC_OPTIONS environment
    variable, or the library's defaults. LD_PRELOAD entries already set (jemalloc,
    mimalloc, ...) stay, after refmalloc: they become the allocator for small blocks.

    \b
    Examples:
      refmalloc run -- ./prog --its-own-options
      refmalloc run --pattern 0x5c --report out.json -- python3 script.py
    """
    options: dict[str, object] = {
        "pattern": pattern,
        "free_pattern": free_pattern,
        "threshold": threshold,
        "report": report,
        "verbose": min(verbose, 2) if verbose else None,
    }
    try:
        env = child_env(options)
    except (FileNotFoundError, ValueError) as exc:
        _error(str(exc))
        ctx.exit(EXIT_INTERNAL)
    sys.stdout.flush()
    sys.stderr.flush()
    status = run_program(command, env)
    if report is not None and "%p" not in report and not os.path.lexists(report):
        _error(f"warning: no report was written to {report}")
    ctx.exit(status)
