"""``refmalloc check``: does a program's behaviour depend on uninitialized heap memory?

The command runs under two patterns where every bit differs (0xaa and 0x55 by
default), the baseline twice to tell the program's own nondeterminism apart, and its
exit status, stdout, stderr and named output files are compared. See
:func:`run_check` and :class:`CheckConfig`; :mod:`pyalloc.check.report` renders the
result.
"""

from __future__ import annotations

from pyalloc.check.core import (
    CLEAN,
    DEPENDENCE,
    INCONCLUSIVE,
    CheckConfig,
    CheckResult,
    run_check,
)

USAGE_ERROR = 2

__all__ = [
    "CLEAN",
    "DEPENDENCE",
    "INCONCLUSIVE",
    "USAGE_ERROR",
    "CheckConfig",
    "CheckResult",
    "run_check",
]
