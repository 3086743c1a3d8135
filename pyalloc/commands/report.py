"""``refmalloc report FILE...``."""

from __future__ import annotations

import json
from typing import Any

import click


@click.command("report")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON instead.")
@click.option(
    "--plot",
    metavar="OUT.png",
    help="Draw the large blocks (pages written vs pattern) and the memory saved against "
    "eager filling into OUT (png, svg, pdf...) and print one line of totals instead of "
    "the table. Needs matplotlib (pip install matplotlib, or '.[plot]' in a checkout).",
)
def report_command(files: tuple[str, ...], as_json: bool, plot: str | None) -> None:
    """Show reports written by `refmalloc run --report` or REFMALLOC_OPTIONS=report=PATH.

    Each FILE is a run report (every process of a run) or a single process's report.
    The table gives the totals over all processes of all FILEs, then one line per
    process. With --plot, one line of totals and where the picture went.

    \b
    Examples:
      refmalloc report run.json
      refmalloc report --json /tmp/r-*.json
      refmalloc report --plot blocks.png run.json
    """
    from pyalloc import reports  # numpy: imported when the command runs

    processes: list[dict[str, Any]] = []
    per_file: list[dict[str, Any]] = []
    for name in files:
        try:
            found = reports.load(name)
        except reports.ReportError as exc:
            raise click.ClickException(str(exc)) from exc
        processes.extend(found)
        per_file.append({"file": name, "pids": [int(p["pid"]) for p in found]})
    if not processes:
        raise click.ClickException("the reports hold no process")
    if plot is not None:
        from pyalloc.plot import PlotUnavailable
        from pyalloc.plot import plot as draw

        title = files[0] if len(files) == 1 else f"{len(files)} reports"
        try:
            draw(processes, plot, title=f"refmalloc: {title}")
        except PlotUnavailable as exc:
            raise click.ClickException(str(exc)) from exc
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"cannot write {plot}: {exc}") from exc
    total = reports.summarize(processes)
    if as_json:
        document = {
            "files": per_file,
            "total": total.as_json(),
            "processes": [reports.summarize([p]).as_json() for p in processes],
        }
        click.echo(json.dumps(document, indent=2))
        return
    if plot is not None:
        # The picture is the answer asked for: the table is a run without --plot away.
        click.echo(f"{reports.render_line(total)}; plot written to {plot}")
        return
    click.echo(reports.render(total, "refmalloc report"))
    if len(processes) > 1:
        click.echo("")
        click.echo(reports.render_processes(processes))
