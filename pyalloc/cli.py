"""The ``refmalloc`` command.

Importing this module stays cheap (``refmalloc run -- true`` should cost little more
than the program): each command's module is imported only when that command runs, and
the version only when ``--version`` asks for it.
"""

from __future__ import annotations

import importlib

import click

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

#: Command name -> (module, attribute), imported on first use.
COMMANDS = {
    "check": ("pyalloc.commands.check", "check_command"),
    "lib-path": ("pyalloc.commands.lib_path", "lib_path_command"),
    "run": ("pyalloc.commands.run", "run_command"),
    "report": ("pyalloc.commands.report", "report_command"),
}


class LazyGroup(click.Group):
    """A group whose commands are imported when they are looked up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        command = getattr(importlib.import_module(entry[0]), entry[1])
        assert isinstance(command, click.Command)
        return command


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from pyalloc._version import __version__  # importlib.metadata: only here

    click.echo(f"refmalloc, version {__version__}")
    ctx.exit()


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.option(
    "-V",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Show the version and exit.",
)
def main() -> None:
    """Run programs under refmalloc, a pattern-initializing malloc.

    Every block a program gets from malloc, realloc's grown tail, memalign and friends
    holds a pattern byte (0xaa unless changed) instead of stale data or zeros; calloc
    still returns zeros. Large blocks are built from shared, copy-on-write reference
    pages, so the pattern costs no memory for pages the program never writes.

    The library is loaded with LD_PRELOAD and configured by REFMALLOC_OPTIONS; this
    command sets both. Run `refmalloc COMMAND --help` for the options of a command.
    """
