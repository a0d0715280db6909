"""Fixtures of the end-to-end tests beyond the session's cluster (tests/conftest.py): the browser for the web page."""

from tests.support.browser import browser, page  # noqa: F401  (fixtures: headless Chromium, an offline page)
