"""Debian's Chromium driven by Playwright, held to the gateway: any request to another host fails.

Playwright's own browser download cannot work here, so the system Chromium (`apt-get install chromium`,
`make test` does it) is launched by path. Tests skip only when that browser is truly absent.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, Route, sync_playwright

from tests.support.processes import REPO

SCREENSHOTS = REPO / "docs" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
VIEWPORT = {"width": 1280, "height": 800}


def chromium_path() -> str:
    """The system Chromium, or a clean skip when it is not installed."""
    found = shutil.which("chromium") or next((p for p in ("/usr/bin/chromium",) if Path(p).exists()), None)
    if found is None:
        pytest.skip("no Chromium on this machine (apt-get install chromium; `make test` installs it)")
    return found


@dataclass
class Offsite:
    """What the page tried to reach beyond the gateway: requests to other hosts and CSP refusals."""

    host: str
    refused: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)

    def route(self, route: Route) -> None:
        url = route.request.url
        if urlsplit(url).scheme in ("http", "https", "ws", "wss") and urlsplit(url).netloc != self.host:
            self.refused.append(url)
            route.abort("blockedbyclient")
        else:
            route.continue_()

    def console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.refused.append(message.text)


@contextmanager
def chromium() -> Iterator[Browser]:
    """The system Chromium under Playwright (one per test module: a second Playwright cannot run beside it)."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def held_to(browser: Browser, base_url: str) -> Iterator[tuple[BrowserContext, Offsite]]:
    """A fresh browser context (its own session storage) whose pages may reach only `base_url`."""
    offsite = Offsite(urlsplit(base_url).netloc)
    context = browser.new_context(base_url=base_url, viewport=VIEWPORT)
    try:
        context.set_default_timeout(30_000)
        context.route("**/*", offsite.route)
        context.on("console", offsite.console)
        context.on("page", lambda page: page.on("pageerror", lambda e: offsite.page_errors.append(str(e))))
        yield context, offsite
    finally:
        context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
