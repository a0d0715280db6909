"""Headless Chromium for the web page's tests: Debian's ``chromium`` (scripts/install-browser.sh) driven by
Playwright's Python API through ``executable_path`` — never a browser Playwright downloads.

Every page runs offline: a request to any host but this machine is refused and recorded, and the test fails if
there was one (the page and the docs must not need a CDN). Uncaught script errors fail the test too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pytest

CHROMIUM = os.environ.get("OCRSERVE_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--no-sandbox",  # root in CI
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",  # this machine's closed network refuses Chromium's own calls home
    "--disable-component-update",
    "--disable-sync",
]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
VIEWPORT = {"width": 1440, "height": 900}  # a laptop screen


def chromium_or_skip() -> str:
    """The Chromium binary; a skip where it is absent (a failure under CI=true: tests/support/skip_policy.py)."""
    path = shutil.which(CHROMIUM) or (CHROMIUM if Path(CHROMIUM).is_file() else None)
    if path is None:
        pytest.skip(f"{CHROMIUM} is missing: run scripts/install-browser.sh (apt-get install chromium)")
    return path


@dataclass
class PageWatch:
    """What a page did that a test should fail on."""

    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright import sync_api  # the test extra

    executable = chromium_or_skip()
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=executable, args=LAUNCH_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture()
def page(browser) -> Iterator[object]:
    """A fresh page (own cookies and session storage) that may talk only to this machine."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    watch = PageWatch()

    def guard(route) -> None:
        url = route.request.url
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname not in LOCAL_HOSTS:
            watch.outside.append(url)
            route.abort()
        else:
            route.continue_()

    context.route("**/*", guard)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.on("pageerror", lambda e: watch.errors.append(str(e)))
    pg.watch = watch  # type: ignore[attr-defined]
    yield pg
    context.close()
    assert not watch.outside, f"the page asked for something outside this machine: {watch.outside}"
    assert not watch.errors, f"uncaught errors in the page: {watch.errors}"
