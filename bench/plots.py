"""PNG plots of time and memory against block size and touched fraction
(matplotlib, when it is installed)."""

from __future__ import annotations

from pathlib import Path

from bench.suite import RunResult
from bench.summary import Cell


def have_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def plot(result: RunResult, cells: dict[str, dict[str, Cell]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[Path] = []
    configs = [c.name for c in result.configs]
    cmap = plt.get_cmap("tab10")
    peers = [c for c in configs if not c.startswith("refmalloc")]
    colour = {c: cmap(i % 10) for i, c in enumerate(peers)}
    ours = ("black", "crimson", "darkgoldenrod")
    colour.update(
        {c: ours[i % 3] for i, c in enumerate(c for c in configs if c.startswith("refmalloc"))}
    )
    large = [w for w in result.workloads if w.group == "large"]
    touches = [t for t in ("1pct", "half", "all") if any(w.param("touch") == t for w in large)]
    if large and touches:
        fig, axes = plt.subplots(2, len(touches), figsize=(5 * len(touches), 8), squeeze=False)
        for j, touch in enumerate(touches):
            ws = sorted(
                (w for w in large if w.param("touch") == touch), key=lambda w: w.param("size")
            )
            for i, metric in enumerate(("time", "peak_anon")):
                ax = axes[i][j]
                for c in configs:
                    xs, ys = [], []
                    for w in ws:
                        r = cells.get(w.name, {}).get(c)
                        if r and metric in r.median:
                            xs.append(w.param("size") / 2**20)
                            scale = 1e6 if metric == "time" else 1024
                            ys.append(r.median[metric] / scale)
                    if xs:
                        style = "-o" if c.startswith("refmalloc") else "--."
                        ax.plot(xs, ys, style, label=c, color=colour[c])
                ax.set_xscale("log")
                ax.set_yscale("log")
                ax.set_xlabel("block size (MiB); 1 GiB live in total")
                ax.set_ylabel("time (ms)" if metric == "time" else "peak anonymous (MiB)")
                ax.set_title(f"large blocks, {touch} written")
                ax.grid(True, which="both", alpha=0.3)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        path = out / "large.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    micro = [w for w in result.workloads if w.group == "refpage"]
    if micro:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        order = {"4k": 0, "half": 1, "all": 2}
        micro.sort(key=lambda w: order.get(w.param("touch"), 9))
        for i, metric in enumerate(("time", "peak_anon")):
            ax = axes[i]
            for c in configs:
                xs, ys = [], []
                for w in micro:
                    r = cells.get(w.name, {}).get(c)
                    if r and metric in r.median:
                        xs.append(w.param("touch"))
                        ys.append(r.median[metric] / (1e6 if metric == "time" else 1024))
                if xs:
                    style = "-o" if c.startswith("refmalloc") else "--."
                    ax.plot(xs, ys, style, label=c, color=colour[c])
            ax.set_yscale("log")
            ax.set_xlabel("part of each 4,096,000-byte block touched")
            ax.set_ylabel("time (ms)" if metric == "time" else "anonymous at mid-run (MiB)")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].set_title("MAP_REFPAGE microbenchmark: malloc, touch, free")
        axes[0].legend(fontsize=7)
        fig.tight_layout()
        path = out / "refpage.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    # Ratio overview: refmalloc configs against glibc, every workload.
    names = [w.name for w in result.workloads if w.name in cells and w.group != "check"]
    rm = [c for c in configs if c.startswith("refmalloc")]
    if names and rm:
        fig, ax = plt.subplots(figsize=(max(8, len(names) * 0.45), 5))
        width = 0.8 / len(rm)
        for k, c in enumerate(rm):
            ys = [cells[n].get(c).ratio.get("time", 0) if cells[n].get(c) else 0 for n in names]
            ax.bar([i + k * width for i in range(len(names))], ys, width, label=c, color=colour[c])
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))])
        ax.set_xticklabels(names, rotation=70, ha="right", fontsize=7)
        ax.set_ylabel("time / glibc (same run)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out / "ratios.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
