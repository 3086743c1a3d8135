"""Pictures of reports (``refmalloc report --plot OUT.png``), through the optional
``plot`` extra (matplotlib).

The figure answers two questions, one panel each, both on a logarithmic byte axis (a
1 GiB block and a 200 KiB one are both visible):

* left, *where did the memory go*: the large blocks grouped by process and allocation
  site (when the run recorded sites, ``--sites``), the largest groups first; each bar
  is what the blocks span, its dark inner bar what the program wrote;
* right, *what did reference pages save*: per process, the bytes each path handed
  out (small blocks, filled by a memset; eager and calloc blocks; refpage blocks),
  what the program wrote of its refpage blocks, and its anonymous memory at exit.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from typing import Any, Final

from pyalloc.reports import SiteGroup, human, name_sites, process_label, site_groups, summarize

MISSING_MESSAGE: Final = (
    "--plot needs matplotlib, which is not installed: pip install matplotlib "
    "(or, in a checkout of refmalloc, pip install '.[plot]')"
)

#: Site groups drawn at most; the rest are summed in one "other" row.
MAX_GROUPS: Final = 16
#: Processes drawn at most in the right panel (the largest).
MAX_PROCESSES: Final = 8

#: Bars of the right panel: label, colour.
PATH_BARS: Final = (
    ("small blocks (memset)", "tab:orange"),
    ("eager + calloc blocks", "tab:brown"),
    ("refpage blocks", "tab:blue"),
    ("refpage pages written", "tab:red"),
    ("anonymous memory at exit", "tab:purple"),
)

_KIND_COLOURS: Final = {"refpage": "tab:blue", "eager": "tab:brown", "zero": "tab:gray"}


class PlotUnavailable(RuntimeError):
    """matplotlib is missing."""


def _pyplot() -> Any:
    try:
        matplotlib = importlib.import_module("matplotlib")
    except ImportError as exc:
        raise PlotUnavailable(MISSING_MESSAGE) from exc
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _tick(value: float) -> str:
    """A power of two in binary units, without decimals: ``131072`` -> ``"128 KiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _byte_axis(ax: Any, values: Sequence[float], ticks_max: int = 8) -> None:
    """A log x axis in binary units, from under the smallest value to past the largest
    (room on the right for the annotations), with at most ``ticks_max`` ticks."""
    ticker = importlib.import_module("matplotlib.ticker")
    positive = [v for v in values if v > 0] or [4096.0]
    lo = 2.0 ** math.floor(math.log2(min(positive)) - 1)
    hi = 2.0 ** math.ceil(math.log2(max(positive)) + 4)
    ax.set_xscale("log", base=2)
    ax.set_xlim(lo, hi)
    step = max(2, math.ceil((math.log2(hi) - math.log2(lo)) / ticks_max))
    ticks = [2.0**e for e in range(math.ceil(math.log2(lo)), math.floor(math.log2(hi)) + 1, step)]
    ax.xaxis.set_major_locator(ticker.FixedLocator(ticks))
    ax.xaxis.set_minor_locator(ticker.NullLocator())
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _pos: _tick(v)))
    ax.grid(axis="x", alpha=0.3)


def _other(groups: Sequence[SiteGroup]) -> SiteGroup:
    other = SiteGroup(0, f"{len(groups)} more groups", None, label="other sites")
    for g in groups:
        other.blocks += g.blocks
        other.live += g.live
        other.bytes += g.bytes
        other.written_bytes += g.written_bytes
        other.refpage_bytes += g.refpage_bytes
        for kind, n in g.kinds.items():
            other.kinds[kind] = other.kinds.get(kind, 0) + n
    return other


def _sites_panel(ax: Any, groups: list[SiteGroup]) -> None:
    total = len(groups)
    if total > MAX_GROUPS:
        groups = [*groups[: MAX_GROUPS - 1], _other(groups[MAX_GROUPS - 1 :])]
    if not groups:
        # No large block: say so in a panel that still has its axis.
        _byte_axis(ax, [])
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(
            0.5,
            0.5,
            "no large blocks: every block was below the threshold\n"
            "(small blocks are in the right panel)",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
        ax.set_title("where did the memory go: large blocks by allocation site")
        return
    y = list(range(len(groups)))
    spans = [float(g.bytes) for g in groups]
    written = [float(g.written_bytes) for g in groups]
    _byte_axis(ax, spans + written)
    floor = ax.get_xlim()[0]
    main_kind = [max(g.kinds, key=g.kinds.__getitem__) if g.kinds else "?" for g in groups]
    for kind, colour in _KIND_COLOURS.items():
        rows = [i for i, k in enumerate(main_kind) if k == kind]
        if rows:
            ax.barh(
                rows,
                [spans[i] - floor for i in rows],
                left=floor,
                color=colour,
                alpha=0.35,
                height=0.8,
                label=f"{kind} blocks: bytes spanned",
            )
    ax.barh(
        y,
        [max(w - floor, 0.0) for w in written],
        left=floor,
        color="tab:red",
        height=0.4,
        label="written (private copies)",
    )
    for yi, g in zip(y, groups, strict=True):
        share = 100.0 * g.written_bytes / g.bytes if g.bytes else 0.0
        blocks = f"{g.blocks} block{'' if g.blocks == 1 else 's'}"
        ax.annotate(
            f" {human(g.bytes)}, {share:.0f}% written, {blocks} ({g.live} live)",
            (max(g.bytes, floor), yi),
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, [f"{g.site_label}\n{g.process}" for g in groups], fontsize=8)
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=8)
    shown = f"{len(groups)} of {total}" if total > len(groups) else f"{total}"
    noun = "group" if total == 1 else "groups"
    ax.set_title(f"where did the memory go: large blocks by allocation site ({shown} {noun})")
    ax.set_xlabel("bytes (log scale)")


def _process_panel(ax: Any, processes: Sequence[dict[str, Any]]) -> None:
    rows = []
    for proc in processes:
        s = summarize([proc])
        eager_zero = s.paths["eager"]["bytes"] + s.paths["zero"]["bytes"]
        values = (
            s.paths["small"]["bytes"],
            eager_zero,
            s.eager_equivalent["eager_bytes"],
            s.eager_equivalent["written_bytes"],
            s.memory["anonymous"] or 0,
        )
        rows.append((process_label(proc, 32), s, values))
    rows.sort(key=lambda r: -sum(r[2][:3]))
    more = len(rows) - MAX_PROCESSES
    rows = rows[:MAX_PROCESSES]
    bar = 0.8 / len(PATH_BARS)
    everything = [float(v) for _, _, values in rows for v in values]
    _byte_axis(ax, everything, ticks_max=5)
    floor = ax.get_xlim()[0]
    for i, (label, colour) in enumerate(PATH_BARS):
        widths = [max(float(values[i]) - floor, 0.0) for _, _, values in rows]
        ys = [r + (i - (len(PATH_BARS) - 1) / 2) * bar for r in range(len(rows))]
        ax.barh(ys, widths, left=floor, height=bar, color=colour, label=label)
        for yi, (_, _, values) in zip(ys, rows, strict=True):
            if values[i] > 0:
                ax.annotate(f" {human(int(values[i]))}", (values[i], yi), va="center", fontsize=7)
    labels = []
    for name, s, _ in rows:
        eq = s.eager_equivalent
        if eq["eager_bytes"]:
            saved = f"refpages saved {human(eq['saved_bytes'])} of {human(eq['eager_bytes'])}"
        else:
            saved = "no refpage blocks"
        labels.append(f"{name}\n{saved}")
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.legend(loc="lower right", fontsize=7)
    extra = f" (largest {len(rows)}; {more} more)" if more > 0 else ""
    ax.set_title(f"what did reference pages save, per process{extra}")
    ax.set_xlabel("bytes (log scale)")


def figure(
    processes: Sequence[dict[str, Any]], title: str = "refmalloc", resolve: bool = True
) -> Any:
    """The matplotlib Figure for ``processes``: axes[0] the site groups, axes[1] the
    processes. ``resolve``: name sites by their function through addr2line."""
    plt = _pyplot()
    groups = site_groups(processes)
    if resolve:
        name_sites(groups[:MAX_GROUPS])
    nprocs = min(len(processes), MAX_PROCESSES)
    rows = max(min(len(groups), MAX_GROUPS), 1.5 * nprocs, 4)
    fig, (left, right) = plt.subplots(
        1, 2, figsize=(17, 1.5 + 0.55 * rows), width_ratios=(3, 2), layout="constrained"
    )
    _sites_panel(left, groups)
    _process_panel(right, processes)
    fig.suptitle(title)
    return fig


def plot(
    processes: Sequence[dict[str, Any]], out: Any, title: str = "refmalloc", fmt: str | None = None
) -> int:
    """Draw ``processes`` into ``out`` (a path, format from its suffix, or a binary file
    with ``fmt``). Returns the number of site groups."""
    plt = _pyplot()
    fig = figure(processes, title)
    try:
        fig.savefig(out, format=fmt, dpi=110)
    finally:
        plt.close(fig)
    return len(site_groups(processes))
