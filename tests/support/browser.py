"""Headless Chromium from Debian's package, driven by Playwright (no browser download)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


BROWSERS = ("chromium", "google-chrome", "google-chrome-stable")


def chromium_path() -> str:
    """CHROMIUM_PATH, else Debian's chromium, else Google Chrome (as GitHub's Ubuntu runners have)."""
    override = os.environ.get("CHROMIUM_PATH")
    found = [override] if override else [shutil.which(name) for name in BROWSERS]
    for path in found:
        if path and os.access(path, os.X_OK):
            return path
    raise RuntimeError("no Chromium found: run scripts/test.sh (installs Debian's chromium) or set CHROMIUM_PATH")


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
