"""Fixtures for the browser test of the built book: a local HTTP server for the site and headless Chromium.

Run after the book is built:  pytest browser_tests  [--site _build/html] [--screenshots _build/screenshots]

Debian's chromium and chromium-driver are required (/usr/bin/chromium, /usr/bin/chromedriver): a missing browser
fails the run, it is never skipped, and Selenium is pointed at the driver so that it never downloads anything.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("SDKIT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SDKIT_CHROMEDRIVER", "/usr/bin/chromedriver")

#: one line per page checked, printed at the end of the run
REPORT: list[str] = []


def pytest_addoption(parser):
    parser.addoption("--site", default=str(ROOT / "_build" / "html"), help="the built book (default _build/html)")
    parser.addoption(
        "--screenshots", default=str(ROOT / "_build" / "screenshots"), help="where to save one PNG per page"
    )


@pytest.fixture(scope="session")
def site(pytestconfig) -> Path:
    path = Path(pytestconfig.getoption("--site")).resolve()
    if not (path / "index.html").is_file():
        pytest.fail(f"no built book at {path} (index.html missing): run `jupyter-book build . -W` first")
    return path


@pytest.fixture(scope="session")
def screenshots(pytestconfig) -> Path:
    path = Path(pytestconfig.getoption("--screenshots")).resolve()
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass


@pytest.fixture(scope="session")
def base_url(site) -> str:
    """The site served over HTTP on 127.0.0.1 at a free port (search needs http://, not file://)."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def driver():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(
            f"headless Chromium is required for the browser test but {', '.join(missing)} is missing: "
            "sudo apt-get install chromium chromium-driver"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1280,1000",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(60)
    yield browser
    browser.quit()


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section(f"pages checked in headless Chromium ({len(REPORT)})")
        for line in REPORT:
            terminalreporter.write_line(line)
