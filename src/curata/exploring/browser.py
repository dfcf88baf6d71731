"""A headless Chromium driven by Selenium: how the explorer page is checked in a real browser (tests, benchmarks,
screenshots). Needs ``selenium`` and Debian's ``chromium`` + ``chromium-driver``; nothing is downloaded."""

from __future__ import annotations

import shutil
from typing import Any

__all__ = ["headless_chromium"]


def headless_chromium(width: int = 1280, height: int = 1800) -> Any:
    """A Selenium Chrome driver on the local ``chromium`` and ``chromedriver`` (never Selenium Manager's
    downloads), headless, with the browser console kept (``driver.get_log("browser")``).

    Example::

        driver = headless_chromium()
        driver.get(page.as_uri()); driver.save_screenshot("explorer.png"); driver.quit()
    """
    try:
        from selenium import webdriver
    except ImportError as exc:
        raise ImportError("headless_chromium needs selenium: pip install selenium") from exc
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if browser is None or driver is None:
        raise FileNotFoundError("Chromium is missing: apt-get install chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))
