"""``refmalloc report --html OUT.html``: one self-contained page.

The page holds the summary, a table per process and per allocation site, the picture
of ``--plot`` (an inline PNG, when matplotlib is installed) and, for ``refmalloc check
--json`` results, the verdict, the findings and the sites ``--locate`` named. Nothing
is fetched: CSS is inline, the picture is a data: URL and there is no script.

Every figure sits in an element with ``data-key`` (what it is) and, for numbers,
``data-value`` (the exact integer), so the page can be checked against the JSON.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import shlex
from collections.abc import Iterable, Sequence
from typing import Any, Final

from pyalloc.reports import (
    SiteGroup,
    human,
    name_sites,
    process_name,
    site_groups,
    summarize,
    summary_rows,
    who,
)

#: Site groups listed at most (the largest); the page says how many more there are.
MAX_SITE_ROWS: Final = 200

_CSS: Final = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em auto; max-width: 80em;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .2em .6em; border-bottom: 1px solid #ddd; vertical-align: top; }
th { text-align: left; background: #f3f3f3; }
td[data-key=process] { white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, pre { font: 12px/1.3 ui-monospace, monospace; }
pre { background: #f6f6f6; padding: .3em .5em; margin: 0; white-space: pre-wrap; }
.bar { width: 12em; height: .9em; background: #eee; position: relative; }
.bar .span { position: absolute; left: 0; top: 0; bottom: 0; background: #9cc3e6; }
.bar .written { position: absolute; left: 0; top: .2em; bottom: .2em; background: #d62728; }
.verdict { font-weight: bold; padding: .1em .4em; border-radius: .2em; }
.verdict.clean { background: #d9f2d9; } .verdict.dependence { background: #f8d0d0; }
.verdict.inconclusive { background: #f8ecc8; }
tr.located td { background: #fff3d6; }
img.plot { max-width: 100%; border: 1px solid #ddd; }
.note { color: #666; }
"""


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _num(key: str, value: int | None, text: str | None = None) -> str:
    """A table cell with a number: shown as ``text``, exact in data-value."""
    if value is None:
        return f'<td class="num" data-key="{_e(key)}">n/a</td>'
    shown = f"{value:,}" if text is None else text
    return f'<td class="num" data-key="{_e(key)}" data-value="{value}">{_e(shown)}</td>'


def _cell(key: str, text: object) -> str:
    return f'<td data-key="{_e(key)}">{_e(text)}</td>'


def _table(header: Sequence[str], rows: Iterable[str], table_id: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join(rows)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _summary_section(processes: Sequence[dict[str, Any]]) -> str:
    s = summarize(processes)
    rows = [
        f'<tr><th>{_e(label)}</th><td data-key="{_e(label)}">{_e(text)}</td></tr>'
        for label, text in summary_rows(s)
    ]
    rows.extend(f'<tr><th>note</th><td class="note">{_e(n)}</td></tr>' for n in s.notes)
    pages = s.refpage_pages
    eq = s.eager_equivalent
    figures = "".join(
        f'<span data-key="{key}" data-value="{value}"></span>'
        for key, value in (
            ("processes", len(s.pids)),
            ("refpage_pages_total", pages["total"]),
            ("refpage_pages_written", pages["written"]),
            ("eager_bytes", eq["eager_bytes"]),
            ("written_bytes", eq["written_bytes"]),
            ("saved_bytes", eq["saved_bytes"]),
        )
    )
    return (
        f'<h2>Summary: {_e(who(s))}</h2><div id="summary-figures" hidden>{figures}</div>'
        f'<table id="summary"><tbody>{"".join(rows)}</tbody></table>'
    )


_PROCESS_HEADER: Final = (
    "process",
    "pid",
    "pattern",
    "small blocks",
    "small bytes",
    "refpage blocks",
    "refpage pages written",
    "of pages",
    "saved vs memset",
    "eager + calloc blocks",
    "anonymous at exit",
    "PSS at exit",
)


def _process_section(processes: Sequence[dict[str, Any]]) -> str:
    rows = []
    for proc in processes:
        s = summarize([proc])
        paths = s.paths
        eq = s.eager_equivalent
        cells = [
            _cell("process", process_name(proc, 80)),
            _num("pid", int(proc["pid"]), str(proc["pid"])),
            _cell("pattern", f"0x{int(proc['pattern']):02x}"),
            _num("small_blocks", paths["small"]["blocks"]),
            _num("small_bytes", paths["small"]["bytes"], human(paths["small"]["bytes"])),
            _num("refpage_blocks", paths["refpage"]["blocks"]),
            _num("refpage_pages_written", s.refpage_pages["written"]),
            _num("refpage_pages", s.refpage_pages["total"]),
            _num("saved_bytes", eq["saved_bytes"], human(eq["saved_bytes"])),
            _num("eager_zero_blocks", paths["eager"]["blocks"] + paths["zero"]["blocks"]),
            _num("anonymous", s.memory["anonymous"], human(s.memory["anonymous"])),
            _num("pss", s.memory["pss"], human(s.memory["pss"])),
        ]
        rows.append(f'<tr data-pid="{int(proc["pid"])}">{"".join(cells)}</tr>')
    return "<h2>Processes</h2>" + _table(_PROCESS_HEADER, rows, "processes")


def _bar(group: SiteGroup, largest: int) -> str:
    """The group's bytes on a log scale (against the largest group), its written part
    as a share of it: the page map of the site at a glance."""
    if group.bytes <= 0 or largest <= 0:
        return '<div class="bar"></div>'
    span = 100.0 * math.log2(1 + group.bytes) / math.log2(1 + largest)
    written = span * group.written_bytes / group.bytes
    return (
        f'<div class="bar" title="{_e(human(group.bytes))}, '
        f'{_e(human(group.written_bytes))} written">'
        f'<div class="span" style="width:{span:.1f}%"></div>'
        f'<div class="written" style="width:{written:.1f}%"></div></div>'
    )


_SITE_HEADER: Final = (
    "site",
    "process",
    "blocks",
    "live at exit",
    "bytes spanned",
    "written",
    "never written",
    "written share",
    "kinds",
    "",
)


def _site_section(groups: list[SiteGroup], located: set[tuple[str, int]]) -> str:
    shown = groups[:MAX_SITE_ROWS]
    largest = max((g.bytes for g in shown), default=0)
    rows = []
    for g in shown:
        key = (g.site.module, g.site.offset) if g.site else None
        css = ' class="located"' if key in located else ""
        share = f"{100.0 * g.written_bytes / g.bytes:.1f}%" if g.bytes else "-"
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(g.kinds.items()))
        where = f"{g.site.module}+{g.site.offset:#x}" if g.site else ""
        cells = [
            f'<td data-key="site" title="{_e(where)}">{_e(g.site_label)}</td>',
            _cell("process", g.process),
            _num("blocks", g.blocks),
            _num("live", g.live),
            _num("bytes", g.bytes, human(g.bytes)),
            _num("written_bytes", g.written_bytes, human(g.written_bytes)),
            _num("never_written_bytes", g.never_written_bytes, human(g.never_written_bytes)),
            _cell("written_share", share),
            _cell("kinds", kinds),
            f"<td>{_bar(g, largest)}</td>",
        ]
        rows.append(f'<tr{css} data-pid="{g.pid}">{"".join(cells)}</tr>')
    more = ""
    if len(groups) > len(shown):
        more = f'<p class="note">{len(groups) - len(shown)} smaller groups not listed.</p>'
    intro = (
        '<p class="note">Large blocks (live at exit and the last ones freed) by process and '
        "allocation site, the largest first. Sites are recorded when the run has "
        "<code>--sites PATH</code> (<code>sites=</code> in REFMALLOC_OPTIONS). "
        "Highlighted: sites that <code>check --locate</code> named.</p>"
    )
    if not groups:
        return "<h2>Allocation sites</h2>" + intro + "<p>No large blocks in the reports.</p>"
    return "<h2>Allocation sites</h2>" + intro + _table(_SITE_HEADER, rows, "sites") + more


def _picture_section(processes: Sequence[dict[str, Any]], title: str) -> str:
    from pyalloc.plot import PlotUnavailable
    from pyalloc.plot import plot as draw

    buffer = io.BytesIO()
    try:
        draw(processes, buffer, title=title, fmt="png")
    except PlotUnavailable as exc:
        return f'<h2>Picture</h2><p class="note" id="picture-missing">No picture: {_e(exc)}</p>'
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return (
        '<h2>Picture</h2><img class="plot" id="picture" alt="large blocks by allocation '
        f'site and memory per process" src="data:image/png;base64,{data}">'
    )


def _check_section(check: dict[str, Any], where: str) -> str:
    verdict = str(check.get("verdict", "?"))
    command = shlex.join(str(a) for a in check.get("command") or [])
    patterns = ", ".join(f"0x{int(p):02x}" for p in check.get("patterns") or [])
    parts = [
        f'<section class="check" data-file="{_e(where)}">',
        f"<h2>Check: <code>{_e(command)}</code></h2>",
        f'<p>Verdict: <span class="verdict {_e(verdict)}" data-key="verdict">{_e(verdict)}'
        f"</span> (exit {_e(check.get('exit_code', '?'))}); patterns {_e(patterns)}; "
        f"{len(check.get('runs') or [])} runs in {_e(check.get('seconds', '?'))} s "
        f"(from {_e(os.path.basename(where))}).</p>",
    ]
    parts.extend(f'<p class="note">note: {_e(n)}</p>' for n in check.get("notes") or [])
    rows = []
    for f in check.get("findings") or []:
        diff = f.get("difference") or {}
        at = f"byte {diff.get('offset', '?')}"
        if diff.get("line") is not None:
            at += f", line {diff['line']}"
        cells = [
            _cell("kind", f.get("kind", "?")),
            _cell("observable", f.get("observable", "?")),
            _cell("where", at),
            f'<td data-key="context"><pre>{_e(diff.get("context", ""))}</pre></td>',
            f'<td data-key="other_context"><pre>{_e(diff.get("other_context", ""))}</pre></td>',
            _cell("pattern_bytes", diff.get("pattern_bytes") or "-"),
        ]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    if rows:
        parts.append("<h3>Findings</h3>")
        header = ("kind", "output", "first difference", "baseline", "other pattern", "pattern")
        parts.append(_table(header, rows, "findings"))
    else:
        parts.append("<p>No findings.</p>")
    locate = check.get("locate")
    if isinstance(locate, dict):
        site_rows = []
        for site in locate.get("sites") or []:
            location = site.get("file") or ""
            if location and site.get("line"):
                location += f":{site['line']}"
            cells = [
                _cell("function", site.get("function") or site.get("symbol") or "??"),
                _cell("location", location),
                _cell("module", f"{site.get('module', '?')}+{site.get('offset', '?')}"),
                _num("allocations", int(site.get("allocations") or 0)),
            ]
            site_rows.append(f"<tr>{''.join(cells)}</tr>")
        parts.append(
            f"<h3>Sites named by --locate</h3><p>{_e(locate.get('sites_logged', '?'))} "
            f"allocation sites logged, {_e(locate.get('runs', '?'))} runs.</p>"
        )
        if site_rows:
            header = ("function", "file:line", "module+offset", "allocations")
            parts.append(_table(header, site_rows, "located-sites"))
        if locate.get("note"):
            parts.append(f'<p class="note">{_e(locate["note"])}</p>')
    parts.append("</section>")
    return "".join(parts)


def _located(checks: Sequence[tuple[str, dict[str, Any]]]) -> set[tuple[str, int]]:
    found: set[tuple[str, int]] = set()
    for _, check in checks:
        locate = check.get("locate")
        for site in locate.get("sites") or [] if isinstance(locate, dict) else []:
            try:
                found.add((str(site.get("module")), int(str(site.get("offset")), 16)))
            except ValueError:
                continue
    return found


def render(
    processes: Sequence[dict[str, Any]],
    checks: Sequence[tuple[str, dict[str, Any]]] = (),
    title: str = "refmalloc report",
    picture: bool = True,
) -> str:
    """The page for ``processes`` (library reports) and ``checks`` ((file, check
    result) pairs). ``picture``: draw the plot into it (needs matplotlib)."""
    body = [f"<h1>{_e(title)}</h1>"]
    for where, check in checks:
        body.append(_check_section(check, where))
    if processes:
        groups = site_groups(processes)
        name_sites(groups[:MAX_SITE_ROWS])
        body.append(_summary_section(processes))
        body.append(_process_section(processes))
        body.append(_site_section(groups, _located(checks)))
        if picture:
            body.append(_picture_section(processes, title))
    else:
        body.append('<p class="note">No process reports given: only check results.</p>')
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body>{''.join(body)}</body></html>\n"
    )
