"""Fixtures for the page's tests: Debian's Chromium driven by Playwright, and the service.

The browser is the system's (`apt-get install chromium`), never one Playwright downloads. Where
none is installed the browser tests skip, saying why; with `CI` set they fail instead, as the
client tests do (`node_with_clients` in tests/support.py): `.ci/run` installs Chromium, so a CI
machine without it is broken, not excused.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import pytest
from agents import Model
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Request,
    async_playwright,
    expect,
)

from app.main import create_app
from app.settings import Settings
from app.web.auth import issue_token
from tests.conftest import with_settings
from tests.support import LiveServer, User, serve

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# How long a step may take before the test fails: generous, for a busy CI machine. A bound, not
# a pause: every wait ends as soon as its condition holds.
WAIT_MS = 20_000
expect.set_options(timeout=WAIT_MS)

# The only URLs that may carry a token: EventSource cannot send headers.
EVENT_SOURCE_PATHS = ("/events?", "/stream?")
_JWT = re.compile(r"eyJ[\w-]+\.[\w-]+\.")


def chromium() -> str:
    path = CHROMIUM if os.access(CHROMIUM, os.X_OK) else shutil.which("chromium")
    if path is not None:
        return path
    missing = "Chromium is not installed (`apt-get install chromium`)"
    if os.environ.get("CI"):
        pytest.fail(f"{missing}: CI must run the browser tests")
    pytest.skip(missing)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=executable, args=LAUNCH_ARGS)
        yield launched
        await launched.close()


@dataclass
class Site:
    """The service on a loopback port, and a browser context (its own storage) to visit it."""

    live: LiveServer
    settings: Settings
    context: BrowserContext
    requests: list[Request] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    expected_errors: list[re.Pattern[str]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return str(self.live.client.base_url)

    def user(self, user_id: str) -> User:
        """A REST client for a user the page signed in, to check what the service stored."""
        return User(user_id, issue_token(self.settings, user_id), self.live.client)

    async def page(self) -> Page:
        page = await self.context.new_page()
        page.on("request", self._record)
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        return page

    def expect_console_error(self, pattern: str) -> None:
        """A console error this test provokes on purpose (a refused request, say): matched by
        `pattern` (re.search), it does not fail the test."""
        self.expected_errors.append(re.compile(pattern))

    def unexpected_console_errors(self) -> list[str]:
        return [
            text
            for text in self.console_errors
            if not any(pattern.search(text) for pattern in self.expected_errors)
        ]

    def _record(self, request: Request) -> None:
        self.requests.append(request)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            self.console_errors.append(f"{message.text} ({where})" if where else message.text)

    def tokens_in_urls(self) -> list[str]:
        """Every URL the pages asked for with a token in it, but EventSource's."""
        return [
            request.url
            for request in self.requests
            if _JWT.search(request.url)
            and not (
                request.resource_type == "eventsource"
                and "access_token=" in request.url
                and any(path in request.url for path in EVENT_SOURCE_PATHS)
            )
        ]


SiteFactory = Callable[..., Awaitable[Site]]


@pytest.fixture
async def start_site(settings: Settings, browser: Browser) -> AsyncIterator[SiteFactory]:
    """`await start_site(token_delay_ms=…, model=…, **settings)`: the service in development
    (so the page's sign-in is a name), the offline model paced as asked."""
    sites: list[Site] = []
    async with AsyncExitStack() as stack:

        async def start(
            token_delay_ms: int = 0, model: Model | None = None, **changes: Any
        ) -> Site:
            configured = with_settings(
                settings,
                **{"app_env": "development", "offline_token_delay_ms": token_delay_ms, **changes},
            )
            live = await stack.enter_async_context(
                serve(create_app(configured, model=model), configured)
            )
            context = await browser.new_context(viewport={"width": 1280, "height": 760})
            context.set_default_timeout(WAIT_MS)
            stack.push_async_callback(context.close)
            site = Site(live, configured, context)
            sites.append(site)
            return site

        yield start
    for site in sites:
        assert site.tokens_in_urls() == [], "a token went into a URL"
        # Every page a test opens, the chat page's `/` as much as `/docs`: a console error (a
        # missing resource, a refused script, an uncaught exception) fails the test.
        assert site.unexpected_console_errors() == [], "the browser's console logged errors"
