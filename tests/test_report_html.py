"""``harness report --format html``: one self-contained page, opened in a real headless Chromium."""

from __future__ import annotations

import base64
import re
import shutil
from pathlib import Path

import pytest

import browser
from fixtures_store import write_store
from harness.cli import main

PNG = b"\x89PNG\r\n\x1a\n"
N_FIGURES = 7  # 4 confusion matrices + accuracy per city + learning curves + embedding projection (fixture store)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """report.html of the fabricated store, copied ALONE into an empty folder (so it must be self-contained)."""
    tmp = tmp_path_factory.mktemp("html")
    store = write_store(tmp / "results")
    out = tmp / "report"
    assert main(["report", "--results", str(store), "--out", str(out), "--format", "html", "--mels", "40",
                 "--no-table2", "--resamples", "200"]) == 0
    assert not (out / "report.md").exists()
    alone = tmp / "alone"
    alone.mkdir()
    shutil.copy(out / "report.html", alone / "report.html")
    return alone / "report.html"


def test_html_report_is_one_self_contained_page(page: Path) -> None:
    text = page.read_text()
    sources = re.findall(r'<img src="([^"]+)"', text)
    assert len(sources) == N_FIGURES
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG
    assert not re.search(r'(src|href)="(?!data:|#)', text), "every reference must be inline or an anchor"
    assert '<h2 id="mels-40">40 log-mel bands</h2>' in text and '<h2 id="tables">Tables</h2>' in text
    assert 'class="sortable"' in text and "<th class=paper>Overall % (paper)</th>" in text
    assert "71.00 ± 1.41" in text and "City invariance" in text and "harness run --arch fcnn --loss ce --aug mixup" in text


def test_checker_sees_script_errors_and_broken_figures(tmp_path: Path) -> None:
    """The browser check below would fail on a broken page."""
    if reason := browser.missing():
        pytest.skip(reason)
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="data:image/png;base64,AAAA"><script>notDefined()</script></body></html>')
    with browser.chromium() as driver:
        state = browser.load(driver, bad)
    assert any("notDefined" in e for e in state["errors"]) and any("failed to load" in e for e in state["errors"])
    assert state["images"][0]["width"] == 0


def test_html_report_renders_in_chromium(page: Path) -> None:
    if reason := browser.missing():
        pytest.skip(reason)
    from selenium.webdriver.common.by import By

    with browser.chromium() as driver:
        state = browser.load(driver, page)
        assert state["errors"] == []
        assert len(state["images"]) == N_FIGURES
        assert all(i["complete"] and i["width"] > 0 for i in state["images"]), state["images"]
        assert state["requests"] == []  # nothing fetched: no file, no network
        assert state["title"] == "ASC harness report" and state["sections"][:2] == ["Tables", "40 log-mel bands"]
        # Sorting: click "Overall % (ours)" of Table 1; the column's numbers come out ascending, then descending.
        table = driver.find_elements(By.CSS_SELECTOR, "table.sortable")[0]
        headers = table.find_elements(By.CSS_SELECTOR, "thead th")
        col = [h.text for h in headers].index("Overall % (ours)")

        def column() -> list[float]:
            cells = [r.find_elements(By.TAG_NAME, "td")[col].text for r in table.find_elements(By.CSS_SELECTOR, "tbody tr")]
            return [float(c.split()[0]) for c in cells if c[:1].isdigit()]

        headers[col].click()
        up = column()
        headers[col].click()
        down = column()
        assert len(up) >= 3 and up == sorted(up) and down == sorted(up, reverse=True)
        assert driver.execute_script("return window.__pageErrors") == []
