"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Playwright through
``executable_path`` (nothing is downloaded). Every test module here is marked ``browser``, and the
``browser`` fixture skips, saying why, when Chromium or Playwright is missing (``.ci/run``
installs Chromium where it can; ``pip install -e '.[test]'`` brings Playwright)."""

from __future__ import annotations

import os
import shutil

import pytest

# $CHROMIUM names another Chromium build (a path or a command name) when it is not on PATH
CHROMIUM = next((found for found in (shutil.which(name) for name in (os.environ.get("CHROMIUM", ""), "chromium",
                                                                   "chromium-browser") if name) if found), None)
# Chromium flags for a closed network: no background connections, no first-run UI, no sandbox
# (CI runs as root), no GPU.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def browser():
    """A headless Chromium, closed after the test."""
    if CHROMIUM is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]')")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()
