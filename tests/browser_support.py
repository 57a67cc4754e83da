"""A real browser for the UI tests: Debian's chromium (/usr/bin/chromium) driven by Playwright,
headless. Playwright's own browser downloads are never used (no `playwright install`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "var" / "reports" / "screenshots"


@contextmanager
def browser() -> Iterator[Browser]:
    """A headless chromium, closed on exit."""
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG of `page` at var/reports/screenshots/<name>.png; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
