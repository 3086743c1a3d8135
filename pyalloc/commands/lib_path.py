"""``refmalloc lib-path``."""

from __future__ import annotations

import click

from pyalloc.library import lib_path


@click.command("lib-path")
def lib_path_command() -> None:
    """Print the absolute path of librefmalloc.so.

    Use it to preload the library by hand:

        LD_PRELOAD=$(refmalloc lib-path) REFMALLOC_OPTIONS=pattern=0x5c ./prog

    The REFMALLOC_LIB environment variable, if set, takes precedence over the copy
    installed with the package.
    """
    try:
        path = lib_path()
    except FileNotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(path)
