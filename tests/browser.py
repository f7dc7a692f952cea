"""A real headless Chromium (the distribution's ``chromium`` + ``chromedriver``) driven through Selenium.

Selenium talks to the chromedriver the distribution ships with the browser (no driver download,
no Node.js); a DevTools hook installed before any page script records uncaught script errors and
failed resource loads, and the browser's console log adds anything logged as an error.

``python tests/browser.py REPORT.html OUT.png`` screenshots a page (the report picture in docs/statistics.md).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")

# Runs before the page's own scripts: uncaught errors and failed loads (capture phase sees <img> errors).
ERROR_HOOK = """
window.__pageErrors = [];
window.addEventListener("error", function (e) {
  var t = e.target;
  window.__pageErrors.push(t && t !== window && (t.src || t.href) ? "failed to load " + String(t.src || t.href).slice(0, 60)
                                                                  : "script error: " + e.message);
}, true);
window.addEventListener("unhandledrejection", function (e) { window.__pageErrors.push("unhandled rejection: " + e.reason); });
"""


def missing() -> str | None:
    """Why no browser can be started here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for tool in ("chromium", "chromedriver"):
        if not (shutil.which(tool) or (tool == "chromium" and shutil.which("chromium-browser"))):
            return f"{tool} is not installed (Debian/Ubuntu: apt-get install chromium chromium-driver)"
    return None


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A fresh headless Chromium (own profile folder, removed afterwards) as a Selenium driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="harness-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": ERROR_HOOK})
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def load(driver: Any, page: Path) -> dict[str, Any]:
    """Open ``page`` and return what rendered: errors, images (loaded, naturalWidth), network requests."""
    driver.get(Path(page).resolve().as_uri())
    driver.execute_script("return document.readyState")  # returns once the load event has fired
    state = driver.execute_script("""
        return {
          errors: window.__pageErrors || [],
          images: Array.from(document.images).map(function (i) {
            return {complete: i.complete, width: i.naturalWidth, src: i.src.slice(0, 22)}; }),
          requests: performance.getEntriesByType("resource").map(function (r) { return r.name; }),
          title: document.title,
          sections: Array.from(document.querySelectorAll("h2")).map(function (h) { return h.textContent; }),
          tables: document.querySelectorAll("table").length,
        };""")
    console = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    state["errors"] = list(state["errors"]) + console
    return state


def screenshot(page: Path, out: Path, width: int = 1280, height: int = 1500) -> None:
    with chromium(width, height) as driver:
        state = load(driver, page)
        if state["errors"]:
            raise SystemExit(f"{page}: page has errors: {state['errors']}")
        driver.save_screenshot(str(out))


if __name__ == "__main__":
    screenshot(Path(sys.argv[1]), Path(sys.argv[2]))
