"""Pictures of reports (``refmalloc report --plot OUT.png``), through the optional
``plot`` extra (matplotlib)."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any, Final

import numpy as np

from pyalloc.reports import Blocks, summarize

MISSING_MESSAGE: Final = (
    "--plot needs matplotlib, which is not installed: pip install matplotlib "
    "(or, in a checkout of refmalloc, pip install '.[plot]')"
)

#: Blocks drawn at most in the per-block panel (the largest ones).
MAX_BLOCKS: Final = 40

_MIB: Final = float(1 << 20)


class PlotUnavailable(RuntimeError):
    """matplotlib is missing."""


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise PlotUnavailable(MISSING_MESSAGE) from exc
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def plot(processes: Sequence[dict[str, Any]], out: str, title: str = "refmalloc") -> int:
    """Draw the large blocks of ``processes`` into ``out`` (format from its suffix).

    Left: per large block (the largest MAX_BLOCKS, live and recently freed), pages written
    against pages still showing the pattern. Right: the memory an eager memset would have
    dirtied against what reference pages cost, in total and for the blocks live at exit.
    Returns the number of blocks drawn.
    """
    plt = _pyplot()
    blocks = Blocks.of(processes)
    summary = summarize(processes)
    order = np.argsort(-blocks.pages, kind="stable")[:MAX_BLOCKS]
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(12, max(4.0, 0.22 * len(order) + 2)), width_ratios=(3, 2)
    )
    if len(order):
        y = np.arange(len(order))
        written = blocks.pages_written[order]
        pattern = blocks.pages_pattern[order]
        left.barh(y, written, color="tab:red", label="written (private copy)")
        left.barh(
            y, pattern, left=written, color="tab:blue", alpha=0.6, label="pattern / untouched"
        )
        labels = [
            f"{blocks.pid[i]} {'live' if blocks.live[i] else 'freed'} {blocks.kind[i]} "
            f"{blocks.size[i] / _MIB:.1f} MiB"
            for i in order
        ]
        left.set_yticks(y, labels, fontsize=7)
        left.invert_yaxis()
        left.set_xlabel("pages")
        left.legend(loc="lower right", fontsize=8)
    else:
        left.text(0.5, 0.5, "no large blocks in the report", ha="center", va="center")
        left.set_axis_off()
    left.set_title(f"large blocks: pages written vs pattern ({len(order)} of {len(blocks)})")

    eq = summary.eager_equivalent
    live = summary.live_at_exit
    groups = ["all refpage blocks", "live at exit"]
    eager = np.array([eq["eager_bytes"], live["eager_bytes"]], dtype=np.float64) / _MIB
    cost = np.array([eq["written_bytes"], live["written_bytes"]], dtype=np.float64) / _MIB
    x = np.arange(len(groups))
    right.bar(x - 0.2, eager, 0.4, color="tab:gray", label="eager memset")
    right.bar(x + 0.2, cost, 0.4, color="tab:green", label="reference pages (written)")
    for xi, (e, c) in enumerate(zip(eager, cost, strict=True)):
        right.annotate(
            f"saved {e - c:.1f} MiB", (xi, max(e, c)), ha="center", va="bottom", fontsize=8
        )
    right.set_xticks(x, groups)
    right.set_ylabel("MiB")
    right.set_title("memory: eager filling vs reference pages")
    right.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return len(order)
