"""``python -m pyalloc`` is the ``refmalloc`` command."""

from pyalloc.cli import main

if __name__ == "__main__":
    main(prog_name="refmalloc")
