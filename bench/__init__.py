"""refmalloc's benchmark suite: ``python -m bench``.

Every configuration (glibc with and without MALLOC_PERTURB_, jemalloc plain
and junk, mimalloc, tcmalloc, Scudo plain and pattern-filled, refmalloc over
glibc and stacked over jemalloc and mimalloc) runs every workload in one run,
interleaved, repetition after repetition; the suite keeps medians and shows
ratios against glibc without pattern measured in the same run.

Modules: :mod:`bench.configs` (the allocators and how to load them),
:mod:`bench.workloads` (what is measured), :mod:`bench.programs` (the C
programs, compiled into a cache), :mod:`bench.runner` (one measurement),
:mod:`bench.suite` (the plan and the run), :mod:`bench.summary` (medians,
ratios, targets), :mod:`bench.report` (tables), :mod:`bench.plots` (PNG),
:mod:`bench.sweep` (the threshold sweep, ``python -m bench --sweep``),
:mod:`bench.cli` (the command line).
"""

from __future__ import annotations

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    from bench.cli import main as _main

    return _main(argv)
