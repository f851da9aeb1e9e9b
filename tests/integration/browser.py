"""Headless Chromium from Debian's packages (``chromium``, ``chromium-driver``) driven by
selenium, for the dashboard's browser tests; and where their screenshots go.

Nothing is downloaded: the browser and its driver are the system's (``.ci/run`` installs
them), passed to selenium by path so that its manager never looks for others.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service


def _found(*names: str) -> str:
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    raise RuntimeError(
        f"none of {', '.join(names)} on PATH: install Debian's chromium and chromium-driver"
    )


@contextmanager
def chromium(width: int = 1280, height: int = 900) -> Iterator[webdriver.Chrome]:
    """A headless Chromium session (its own profile: no cookies shared between two)."""
    options = webdriver.ChromeOptions()
    options.binary_location = _found("chromium", "chromium-browser")
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(_found("chromedriver")))
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_dir(tmp: Path) -> Path:
    """``RELAY_UI_SCREENSHOTS`` when set (CI keeps it), else a folder of the test's tmp."""
    folder = Path(os.environ.get("RELAY_UI_SCREENSHOTS") or tmp / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
