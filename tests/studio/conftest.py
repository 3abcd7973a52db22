"""Browser fixtures: one Headwater server and one headless Chromium (the system one, driven by Playwright).

Chromium comes from Debian (scripts/install_system_packages.sh installs it); Playwright's own
browser download is never used. Screenshots of every page land in the artifacts folder, printed
at the end of the run (HEADWATER_STUDIO_ARTIFACTS overrides it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from studio_support import ARTIFACTS, CHROMIUM, Studio, new_studio, written
from support.server import ServerProcess


def pytest_terminal_summary(terminalreporter):
    if written:
        terminalreporter.write_sep("-", "Studio screenshots and measurements")
        terminalreporter.write_line(f"{len(written)} files in {ARTIFACTS}")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def studio_server(tmp_path_factory) -> Iterator[ServerProcess]:
    server = ServerProcess(data_dir=tmp_path_factory.mktemp("studio-server")).start()
    try:
        yield server
    finally:
        server.stop()


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and the asyncio tests of any module after it could not run theirs.
@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: run scripts/install_system_packages.sh (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def studio(browser, studio_server, artifacts) -> Iterator[Studio]:
    studio = new_studio(browser, studio_server, artifacts)
    try:
        yield studio
        assert studio.errors == []
    finally:
        studio.page.context.close()
