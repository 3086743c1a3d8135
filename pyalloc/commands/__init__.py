"""Subcommands of ``refmalloc``: one module each."""
