"""The ``refmalloc`` command."""

from __future__ import annotations

import click

from pyalloc._version import __version__
from pyalloc.commands.check import check_command
from pyalloc.commands.lib_path import lib_path_command
from pyalloc.commands.report import report_command
from pyalloc.commands.run import run_command

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="refmalloc")
def main() -> None:
    """Run programs under refmalloc, a pattern-initializing malloc.

    Every block a program gets from malloc, realloc's grown tail, memalign and friends
    holds a pattern byte (0xaa unless changed) instead of stale data or zeros; calloc
    still returns zeros. Large blocks are built from shared, copy-on-write reference
    pages, so the pattern costs no memory for pages the program never writes.

    The library is loaded with LD_PRELOAD and configured by REFMALLOC_OPTIONS; this
    command sets both. Run `refmalloc COMMAND --help` for the options of a command.
    """


main.add_command(check_command)
main.add_command(lib_path_command)
main.add_command(run_command)
main.add_command(report_command)
