"""``refmalloc run [options] -- COMMAND [ARGS]...``."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import click

from pyalloc import backends
from pyalloc.inject import child_env, is_python_command
from pyalloc.mte import unavailable_reason as mte_unavailable_reason
from pyalloc.options import KNOWN_KEYS, click_options
from pyalloc.rerun import collect_reports, report_dir, report_option

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
    # refmalloc writes FILE itself once the run is over (the processes write into a
    # private directory), so any path will do, commas included.
    path = os.path.abspath(value)
    parent = os.path.dirname(path)
    if "%p" not in parent and not os.path.isdir(parent):
        raise click.BadParameter(f"directory {parent!r} does not exist", ctx, param)
    if "%p" not in path and os.path.lexists(path):
        if os.path.islink(path):
            why = "is a symbolic link; refmalloc never follows one for a report"
        elif os.path.isdir(path):
            why = (
                "is a directory; --report names the file to write "
                "(DIR/report-%p.json gives one per process)"
            )
        else:
            why = "already exists; refmalloc never overwrites a report"
        raise click.BadParameter(f"{value!r} {why}: remove it or choose another name", ctx, param)
    # With %p the names are only known at the end (one per process, by pid).
    return path


def _check_mte(ctx: click.Context, param: click.Parameter, value: bool | None) -> bool | None:
    if value:
        reason = mte_unavailable_reason()
        if reason is not None:
            raise click.BadParameter(reason, ctx, param)
    return value


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


def _check_backend(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Resolve --backend to the library to preload ("" for glibc: nothing)."""
    if value is None:
        return None
    try:
        path = backends.resolve(value)
    except backends.BackendError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc
    return path or ""


def wait_program(proc: subprocess.Popen[bytes]) -> int:
    """Wait for a started program as a shell does; its shell-style exit status."""
    with _signals_to(proc):
        status = proc.wait()
    return 128 - status if status < 0 else status


def start_program(argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes] | int:
    """Start ``argv``: the process, or the shell-style status if it could not start."""
    name = argv[0]
    try:
        return subprocess.Popen(list(argv), env=env)
    except FileNotFoundError:
        if os.sep in name and os.path.lexists(name):
            # The file is there, its interpreter or loader is not.
            _error(f"cannot execute {name}: bad interpreter or loader (No such file or directory)")
            return EXIT_CANNOT_EXECUTE
        _error(f"command not found: {name}")
        return EXIT_NOT_FOUND
    except PermissionError:
        why = "is a directory" if os.path.isdir(name) else "permission denied"
        _error(f"cannot execute {name}: {why}")
        return EXIT_CANNOT_EXECUTE
    except OSError as exc:
        _error(f"cannot execute {name}: {exc.strerror or exc}")
        return EXIT_CANNOT_EXECUTE


def _deliver_reports(
    directory: Path,
    command: Sequence[str],
    status: int,
    pid: int | None,
    report: str | None,
    summary: bool,
) -> None:
    """Gather the per-process reports of a run; write --report, print --summary."""
    from pyalloc import reports  # numpy: only when reports are asked for

    processes, problems = collect_reports(directory, pid)
    for problem in problems:
        _error(f"warning: {problem}")
    keep = False
    if not processes:
        _error(
            "warning: no process wrote a report (all killed by a signal, ended with _exit, "
            "or not dynamically linked?)"
        )
    elif report is not None:
        targets: list[tuple[str, Any]]
        if "%p" in report:
            targets = [(reports.expand_pid(report, int(p["pid"])), p) for p in processes]
        else:
            targets = [(report, reports.run_report(command, status, pid, processes))]
        for target, data in targets:
            try:
                reports.write_new(target, data)
            except OSError as exc:
                keep = True
                if exc.errno == errno.EEXIST and os.path.islink(target):
                    why = "it is a symbolic link (never followed)"
                elif exc.errno == errno.EEXIST:
                    why = "it exists (never overwritten)"
                else:
                    why = f"cannot create it: {exc.strerror}"
                _error(f"report not written to {target}: {why}")
        if keep:
            _error(f"the reports of this run are kept in {directory}")
    if summary and processes:
        click.echo(reports.render(reports.summarize(processes), "refmalloc summary"), err=True)
    if not keep:
        shutil.rmtree(directory, ignore_errors=True)


@click.command(
    "run",
    context_settings={"allow_interspersed_args": False},
    epilog=(
        "Exit status: the command's own; 128+N if signal N killed it; 127 if the command "
        "was not found; 126 if it could not be executed; 125 if refmalloc itself failed "
        "(e.g. librefmalloc.so not found); 2 for a usage error."
    ),
)
# One flag per key of the library's table; --report and -v/--verbose are run's own.
@click_options(skip=("report", "verbose"), callbacks={"mte": _check_mte})
@click.option(
    "--backend",
    metavar="NAME|PATH",
    callback=_check_backend,
    help="Allocator for small blocks, preloaded right after refmalloc: glibc, jemalloc, "
    "mimalloc, tcmalloc (Debian's libjemalloc2, libmimalloc2.0, libtcmalloc-minimal4) or "
    "the path of a shared object. Replaces allocators already in LD_PRELOAD.",
)
@click.option(
    "--python-malloc/--no-python-malloc",
    default=None,
    help="Set PYTHONMALLOC=malloc so that Python's small objects go through malloc too. "
    "On by default when COMMAND is a Python interpreter or a Python script.",
)
@click.option(
    "--report",
    metavar="FILE",
    callback=_check_report,
    help="Write a JSON report to FILE at exit, with one entry per process of the run "
    "(forked and executed children included). With %p in FILE, one file per process "
    "instead (%p is its pid). FILE must not exist yet.",
)
@click.option(
    "--summary",
    is_flag=True,
    help="Print a short table on stderr at exit: blocks and bytes per path, pages written, "
    "memory saved against eager filling, PSS and anonymous memory, fallbacks.",
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
    backend: str | None,
    python_malloc: bool | None,
    report: str | None,
    summary: bool,
    verbose: int,
    command: tuple[str, ...],
    **library: object,
) -> None:
    """Run COMMAND with librefmalloc.so preloaded and return its exit status.

    Options not given here keep the values set in the REFMALLOC_OPTIONS environment
    variable, or the library's defaults. LD_PRELOAD entries already set (jemalloc,
    mimalloc, ...) stay, after refmalloc: they become the allocator for small blocks.

    \b
    Examples:
      refmalloc run -- ./prog --its-own-options
      refmalloc run --pattern 0x5c --summary -- python3 script.py
      refmalloc run --backend jemalloc --report run.json -- make -j2
    """
    options: dict[str, object] = {key: library[key] for key in KNOWN_KEYS if key in library}
    options["verbose"] = min(verbose, 2) if verbose else None
    if python_malloc is None:
        python_malloc = is_python_command(command, path=os.environ.get("PATH"))
    directory: Path | None = None
    try:
        if report is not None or summary:
            directory = report_dir()
            options["report"] = report_option(directory)
        env = child_env(
            options,
            backend=backend or None,
            replace_allocators=backend is not None,
            python_malloc=python_malloc,
        )
    except (FileNotFoundError, ValueError, OSError) as exc:
        _error(str(exc))
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        ctx.exit(EXIT_INTERNAL)
    sys.stdout.flush()
    sys.stderr.flush()
    proc = start_program(command, env)
    if isinstance(proc, int):  # never started: no reports to speak of
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        ctx.exit(proc)
    status = wait_program(proc)
    if directory is not None:
        _deliver_reports(directory, command, status, proc.pid, report, summary)
    ctx.exit(status)
