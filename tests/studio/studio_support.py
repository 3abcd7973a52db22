"""Helpers of the Studio browser tests: the signed-in tab, screenshots, the artifacts folder."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from support.server import ServerProcess

CHROMIUM = os.environ.get("HEADWATER_CHROMIUM", "/usr/bin/chromium")
REPO_ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("HEADWATER_STUDIO_ARTIFACTS", REPO_ROOT / "test-artifacts" / "studio"))
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
written: list[Path] = []


@dataclass
class Studio:
    """A signed-in browser tab on the Studio, plus the admin API for setting things up quickly."""

    server: ServerProcess
    page: object
    artifacts: Path
    errors: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return self.server.base_url

    def open(self, hash_path: str, ready: str = "main .page h1", idle: bool = True) -> None:
        # A fresh load each time: a hash change alone would leave the previous page's elements to match.
        self.page.goto("about:blank")
        self.page.goto(f"{self.base}/studio#/{hash_path}")
        self.page.wait_for_selector(ready)
        if idle:  # not for pages that follow a live stream: they are busy until it ends
            self.page.wait_for_load_state("networkidle")

    def shot(self, name: str, full_page: bool = True) -> Path:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)
        written.append(path)
        return path

    def api(self) -> httpx.Client:
        return self.server.client(self.server.admin_key)

    def horizontal_overflow(self) -> int:
        return self.page.evaluate(
            "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
            " - document.documentElement.clientWidth"
        )


def record(path: Path) -> None:
    written.append(path)


def new_studio(browser, server: ServerProcess, artifacts: Path, viewport=DESKTOP, signed_in: bool = True) -> Studio:
    context = browser.new_context(viewport=viewport, base_url=server.base_url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    studio = Studio(server, page, artifacts)
    page.on("pageerror", lambda error: studio.errors.append(f"page error: {error}"))
    if signed_in:
        response = context.request.post("/studio/api/session",
                                        data={"username": "admin", "password": server.admin_password})
        assert response.status == 201, response.text()
    return studio
