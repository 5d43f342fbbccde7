"""
A real browser for the tests: Debian's Chromium, headless, driven by
Selenium through Debian's ChromeDriver.  Nothing is downloaded: the browser
and its driver are the system's packages (C{.ci/run} installs them), and
Selenium is told where they are so that it never looks for its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any, Callable

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 20.0

# Selenium Manager must not try to fetch a browser or driver.
os.environ.setdefault("SE_OFFLINE", "true")


class Browser:
    """
    One headless Chromium window, with its own empty profile; L{close}
    quits it and makes sure its driver process is gone.
    """

    def __init__(self, width: int = 1100, height: int = 900) -> None:
        self.profile = tempfile.mkdtemp(prefix="soukets-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in (
            "--headless=new",
            "--no-sandbox",  # the tests run as root
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            f"--user-data-dir={self.profile}",
            f"--window-size={width},{height}",
        ):
            options.add_argument(flag)
        self.service = Service(executable_path=CHROMEDRIVER)
        self.driver = webdriver.Chrome(options=options, service=self.service)
        self.driver.set_page_load_timeout(WAIT)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def find(self, element_id: str) -> Any:
        return self.driver.find_element(By.ID, element_id)

    def text(self, element_id: str) -> str:
        return self.find(element_id).text

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """
        Wait until C{condition()} is true; fail saying C{what} was awaited,
        with what the page shows.
        """
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(
                lambda _: condition()
            )
        except Exception as e:
            body = self.driver.find_element(By.TAG_NAME, "body").text
            raise AssertionError(f"waited for {what}; the page shows:\n{body}") from e

    def wait_text(self, element_id: str, fragment: str, timeout: float = WAIT) -> str:
        return self.wait(
            lambda: fragment in self.text(element_id) and self.text(element_id),
            f"{fragment!r} in #{element_id}",
            timeout,
        )

    def type_into(self, element_id: str, text: str) -> None:
        field = self.find(element_id)
        field.clear()
        field.send_keys(text)

    def click(self, element_id: str) -> None:
        self.wait(lambda: self.find(element_id).is_enabled(), f"#{element_id} enabled")
        self.find(element_id).click()

    def screenshot(self, path: str) -> None:
        self.driver.save_screenshot(path)

    def close(self) -> None:
        process = getattr(self.service, "process", None)
        try:
            self.driver.quit()
        finally:
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
            shutil.rmtree(self.profile, ignore_errors=True)
