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
@click.option(
    "--html",
    "html_out",
    metavar="OUT.html",
    help="Write one self-contained page (no network) to OUT.html: the summary, tables per "
    "process and per allocation site, the picture of --plot (when matplotlib is installed) "
    "and, for FILEs written by `refmalloc check --json`, the verdict and findings with the "
    "sites --locate named.",
)
def report_command(
    files: tuple[str, ...], as_json: bool, plot: str | None, html_out: str | None
) -> None:
    """Show reports written by `refmalloc run --report` or REFMALLOC_OPTIONS=report=PATH.

    Each FILE is a run report (every process of a run) or a single process's report;
    with --html, also a `refmalloc check --json` result. The table gives the totals over
    all processes of all FILEs, then one line per process; with --plot or --html, one
    line of totals and where the picture or page went. Blocks are grouped by allocation
    site when the run recorded sites (`refmalloc run --sites PATH`).

    \b
    Examples:
      refmalloc report run.json
      refmalloc report --json /tmp/r-*.json
      refmalloc report --plot blocks.png run.json
      refmalloc report --html report.html run.json check.json
    """
    from pyalloc import reports  # numpy: imported when the command runs

    processes: list[dict[str, Any]] = []
    per_file: list[dict[str, Any]] = []
    checks: list[tuple[str, dict[str, Any]]] = []
    for name in files:
        try:
            data = reports.read_json(name)
            if reports.is_check_result(data):
                if html_out is None:
                    raise reports.ReportError(
                        f"{name}: a `refmalloc check --json` result, not a report; --html shows it"
                    )
                checks.append((name, data))
                continue
            found = reports.parse(data, name)
        except reports.ReportError as exc:
            raise click.ClickException(str(exc)) from exc
        processes.extend(found)
        per_file.append({"file": name, "pids": [int(p["pid"]) for p in found]})
    title = files[0] if len(files) == 1 else f"{len(files)} reports"
    if html_out is not None:
        from pyalloc import html_report

        page = html_report.render(processes, checks, title=f"refmalloc: {title}")
        try:
            with open(html_out, "w", encoding="utf-8") as handle:
                handle.write(page)
        except OSError as exc:
            raise click.ClickException(f"cannot write {html_out}: {exc.strerror}") from exc
    if not processes:
        if checks:
            click.echo(f"html written to {html_out}")
            return
        raise click.ClickException("the reports hold no process")
    if plot is not None:
        from pyalloc.plot import PlotUnavailable
        from pyalloc.plot import plot as draw

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
    written = [
        f"{kind} written to {path}" for kind, path in (("plot", plot), ("html", html_out)) if path
    ]
    if written:
        # The picture or page is the answer asked for: the table is a run without them away.
        click.echo("; ".join([reports.render_line(total), *written]))
        return
    click.echo(reports.render(total, "refmalloc report"))
    if len(processes) > 1:
        click.echo("")
        click.echo(reports.render_processes(processes))
