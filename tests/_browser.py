"""The one page opener of the browser tests: headless Chromium with the network cut.

A test asks for the ``open_page`` fixture (tests/conftest.py) and calls ``open_page(path_or_url)`` to get a
ready page (``window.datacartoReady``, no ``window.datacartoError``). When the test ends, its pages close and
the test fails if any of them asked the network for something or raised an error. A module of browser tests
sets ``pytestmark = needs_browser``: skipped only when /usr/bin/chromium or the playwright package is missing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL = ("file:", "blob:", "data:")
READY = "window.datacartoReady === true || !!window.datacartoError"

MISSING = ("the playwright package is not installed" if importlib.util.find_spec("playwright") is None
           else None if os.path.exists(CHROMIUM) else f"no Chromium at {CHROMIUM}")
needs_browser = [pytest.mark.browser, pytest.mark.skipif(MISSING is not None, reason=MISSING or "")]


def page_url(path_or_url) -> str:
    """A file path as its file:// URL; a URL as it is."""
    text = os.fspath(path_or_url)
    return text if "://" in text else Path(text).resolve().as_uri()


class PageOpener:
    """``open_page(path_or_url, *, viewport=(1300, 850), ready=True, init_script=None) -> page``.

    ``ready``: wait for the explorer's ``window.datacartoReady`` (False: a page without datacarto's script).
    ``init_script``: JavaScript run before the page's own (to take a browser feature away). A page served
    over http(s) may load from its own origin; everything else off the machine is refused and noted.
    """

    def __init__(self, browser):
        self.browser = browser
        self.contexts: list = []
        self.outside: list[str] = []  # requests for anything but the page's own files
        self.errors: list[str] = []  # the pages' uncaught errors

    def __call__(self, path_or_url, *, viewport=(1300, 850), ready: bool = True, init_script: str | None = None):
        url = page_url(path_or_url)
        parts = urlsplit(url)
        allowed = LOCAL + ((f"{parts.scheme}://{parts.netloc}/",) if parts.scheme in ("http", "https") else ())
        context = self.browser.new_context(accept_downloads=True, viewport={"width": viewport[0], "height": viewport[1]})
        self.contexts.append(context)
        context.route("**/*", lambda route: route.continue_() if route.request.url.startswith(allowed)
                      else route.abort())  # the network is cut
        pg = context.new_page()
        pg.on("request", lambda r: None if r.url.startswith(allowed) else self.outside.append(r.url))
        pg.on("pageerror", lambda e: self.errors.append(str(e)))
        if init_script:
            pg.add_init_script(init_script)
        pg.goto(url)
        if ready:
            pg.wait_for_function(READY, timeout=30_000)
            assert pg.evaluate("window.datacartoError || null") is None
        return pg

    def close(self) -> None:
        """Close every page; then nothing was asked of the network and no page raised an error."""
        for context in self.contexts:
            context.close()
        self.contexts.clear()
        assert self.outside == [], f"requests off the machine: {self.outside}"
        assert self.errors == [], f"page errors: {self.errors}"
