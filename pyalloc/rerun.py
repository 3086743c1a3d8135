"""Running a program again under refmalloc and gathering what its processes report.

Shared by ``refmalloc run`` (``--report``/``--summary``), the pytest plugin's fixture
(``refmalloc.run(..., report=True)``) and its sessions: a private directory each
process of the run writes its JSON report into, and the collection of those reports.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

#: The report= value that makes every process write its own file into a directory.
REPORT_NAME = "report-%p.json"


def report_dir(parent: str | Path | None = None, prefix: str = "refmalloc-run-") -> Path:
    """A new private directory for the reports of one run.

    Raises ValueError when its path holds a comma, which REFMALLOC_OPTIONS cannot carry.
    """
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    if "," in str(directory):
        shutil.rmtree(directory, ignore_errors=True)
        raise ValueError(
            f"temporary directory {directory} contains a comma, which REFMALLOC_OPTIONS "
            "cannot carry: set TMPDIR to another directory"
        )
    return directory


def report_option(directory: Path) -> str:
    """The ``report=`` option value for :func:`report_dir`'s directory."""
    return str(directory / REPORT_NAME)


def collect_reports(directory: Path, top_pid: int | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The process reports in ``directory`` (the top process first) and the problems."""
    from pyalloc import reports  # numpy: only when reports are asked for

    return reports.collect(directory, top_pid)
