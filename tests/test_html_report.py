"""``refmalloc report --html``: the page, loaded in a real headless Chromium (Debian's
chromium and chromium-driver, driven by selenium), shows the figures of the JSON
report and of a ``check --locate --json`` result, and fetches nothing.

Chromium missing is an installation problem (scripts/setup.sh installs it), not a
reason to skip: the test fails and says what to install.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL = (
    "needs Debian's chromium and chromium-driver (apt-get install -y chromium "
    "chromium-driver; scripts/setup.sh installs them) and selenium (pip install '.[test]')"
)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail(f"selenium is not installed: this test {INSTALL}")
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(f"chromium or chromedriver not found: this test {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # as root, in CI containers
        "--disable-dev-shm-usage",
        "--window-size=1400,2000",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    # The driver named explicitly: selenium would otherwise look for one on the network.
    drv = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield drv
    finally:
        drv.quit()


def _pyalloc(*args: str, stdout: Any = subprocess.PIPE) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pyalloc", *args],
        stdout=stdout,
        stderr=subprocess.PIPE,
        timeout=180,
        check=False,
    )


def _cells(row: Any) -> dict[str, Any]:
    """data-key -> data-value (int) or text, for the cells of a table row."""
    out: dict[str, Any] = {}
    for cell in row.find_elements("css selector", "[data-key]"):
        value = cell.get_attribute("data-value")
        out[cell.get_attribute("data-key")] = int(value) if value is not None else cell.text
    return out


def test_html_page_in_chromium(build: Any, browser: Any, tmp_path: Path) -> None:
    exe = build("sites.c")
    run = tmp_path / "run.json"
    cp = _pyalloc("run", "--sites", str(tmp_path / "s-%p.log"), "--report", str(run), "--", exe)
    assert cp.returncode == 0, cp.stderr.decode()
    check = tmp_path / "check.json"
    with check.open("wb") as out:
        cp = _pyalloc("check", "--locate", "--json", "--", exe, stdout=out)
    assert cp.returncode == 1, cp.stderr.decode()  # sites.c prints uninitialized bytes
    page = tmp_path / "page.html"
    cp = _pyalloc("report", "--html", str(page), str(run), str(check))
    assert cp.returncode == 0, cp.stderr.decode()
    assert f"html written to {page}".encode() in cp.stdout
    figures = json.loads(_pyalloc("report", "--json", str(run)).stdout)
    checked = json.loads(check.read_text())

    text = page.read_text()
    assert "http://" not in text and "https://" not in text  # nothing to fetch

    browser.get(page.as_uri())
    assert browser.title == "refmalloc: 2 reports"
    # The page loaded nothing besides itself (the picture is a data: URL).
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    assert [name for name in fetched if not name.startswith("data:")] == []

    # Summary: the totals of `report --json`.
    total = figures["total"]
    summary = {
        s.get_attribute("data-key"): int(s.get_attribute("data-value"))
        for s in browser.find_elements("css selector", "#summary-figures [data-key]")
    }
    assert summary == {
        "processes": len(total["pids"]),
        "refpage_pages_total": total["refpage_pages"]["total"],
        "refpage_pages_written": total["refpage_pages"]["written"],
        "eager_bytes": total["eager_equivalent"]["eager_bytes"],
        "written_bytes": total["eager_equivalent"]["written_bytes"],
        "saved_bytes": total["eager_equivalent"]["saved_bytes"],
    }

    # One row per process, its figures as in the JSON.
    rows = [_cells(r) for r in browser.find_elements("css selector", "#processes tbody tr")]
    assert [r["pid"] for r in rows] == [p["pids"][0] for p in figures["processes"]]
    for row, proc in zip(rows, figures["processes"], strict=True):
        assert row["small_blocks"] == proc["paths"]["small"]["blocks"]
        assert row["refpage_blocks"] == proc["paths"]["refpage"]["blocks"]
        assert row["refpage_pages"] == proc["refpage_pages"]["total"]
        assert row["refpage_pages_written"] == proc["refpage_pages"]["written"]
        assert row["saved_bytes"] == proc["eager_equivalent"]["saved_bytes"]
        assert row["anonymous"] == proc["memory"]["anonymous"]

    # Sites: the 1 MiB block of make_dirty_large, named by its function, highlighted as
    # the site check --locate named.
    (process,) = json.loads(run.read_text())["processes"]
    (block,) = [b for b in process["live_blocks"] if b["size"] == 1 << 20]
    site_rows = browser.find_elements("css selector", "#sites tbody tr")
    big = [r for r in site_rows if _cells(r)["site"].startswith("make_dirty_large (sites.c:")]
    assert len(big) == 1
    cells = _cells(big[0])
    assert cells["bytes"] == block["pages"] * process["page_size"]
    assert cells["written_bytes"] == block["pages_written"] * process["page_size"]
    assert cells["blocks"] == 1 and cells["live"] == 1
    assert "located" in big[0].get_attribute("class")

    # The check: verdict, the finding, the located sites.
    assert browser.find_element("css selector", "[data-key=verdict]").text == checked["verdict"]
    findings = [_cells(r) for r in browser.find_elements("css selector", "#findings tbody tr")]
    assert [(f["kind"], f["observable"]) for f in findings] == [
        (f["kind"], f["observable"]) for f in checked["findings"]
    ]
    located = [
        _cells(r)["function"]
        for r in browser.find_elements("css selector", "#located-sites tbody tr")
    ]
    assert located == [s["function"] for s in checked["locate"]["sites"]]
    assert "make_dirty_large" in located

    # The picture decoded in the browser.
    width = browser.execute_script(
        "const i = document.getElementById('picture'); return i.complete ? i.naturalWidth : 0"
    )
    assert width > 800

    # The whole page, past the window (Chromium's DevTools protocol), kept with the
    # test's files for a person to look at.
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True}
    )
    png = base64.b64decode(shot["data"])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "page.png").write_bytes(png)
