"""Helpers for the browser tests: headless Chromium through Playwright.

Debian's `chromium` package is the browser (`playwright install` cannot
download one here); Playwright drives it over CDP.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from playwright.sync_api import Browser, Error, Page, Playwright, expect

# A busy 2-core CI machine runs a whole cluster beside the browser: give
# every expectation 15 s instead of Playwright's 5 s before calling it a failure.
expect.set_options(timeout=15_000)

CHROMIUM = os.environ.get("TASKORG_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LAPTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


def launch(playwright: Playwright) -> Browser:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        raise RuntimeError(f"the browser tests need Chromium at {CHROMIUM} (apt-get install -y chromium)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def goto(page: Page, url: str, attempts: int = 3) -> None:
    """Open `url`, again when Chromium dropped the navigation because an interface came or went.

    Chromium aborts a page load with ERR_NETWORK_CHANGED whenever the host's
    network interfaces change, and other tests on this machine create and
    remove Docker networks; a person would press reload.
    """
    for attempt in range(1, attempts + 1):
        try:
            page.goto(url)
            return
        except Error as exc:
            if "ERR_NETWORK_CHANGED" not in str(exc) or attempt == attempts:
                raise
            page.wait_for_timeout(500)


def log_in(page: Page, base_url: str, secret: str) -> None:
    goto(page, base_url + "/")
    page.wait_for_selector("#secret")
    page.fill("#secret", secret)
    page.click("form button[type=submit]")
    page.wait_for_selector("#members-title")


def screenshot(page: Page, name: str) -> Path:
    """A full-page screenshot under artifacts/screenshots/ (git-ignored)."""
    path = screenshot_path(name, page.viewport_size["width"])  # type: ignore[index]
    page.screenshot(path=str(path), full_page=True)
    return path


def screenshot_path(name: str, width: int) -> Path:
    """Where an element's screenshot goes: beside the full-page ones, named the same way."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}-{width}.png"


def horizontal_overflow(page: Page) -> int:
    """How many pixels the page is wider than the window (0 when it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))
