"""Shared fixtures: a built copy of the mini estate, a headless Chromium, a loopback HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from estate.config import load_config
from handbook.build import build

DATA = Path(__file__).parent / "data"
TODAY = date(2026, 11, 22)
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).parent / "artifacts"

# The builds tests run (build.py in subprocesses, build.main in-process) start no resident build server and
# hand nothing to one a developer has running: tests/test_buildserver.py turns it on for its own.
os.environ["ESTATE_DESK_BUILD_SERVER"] = "off"


def copy_estate(name: str, dest: Path) -> Path:
    """Copy tests/data/NAME to DEST so a test may change it."""
    shutil.copytree(DATA / name, dest / name, ignore=shutil.ignore_patterns("var", "site"))  # runtime leftovers
    return dest / name


@pytest.fixture
def estate_copy() -> Callable[[str, Path], Path]:
    """copy_estate, for a test that needs more than one copy (or one somewhere else)."""
    return copy_estate


@pytest.fixture
def mini(tmp_path: Path) -> Path:
    """A writable copy of the mini estate."""
    return copy_estate("mini", tmp_path)


@pytest.fixture(scope="session")
def mini_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mini estate built once for read-only tests."""
    root = copy_estate("mini", tmp_path_factory.mktemp("mini"))
    build(load_config(root), root / "site", today=TODAY, workers=1)
    return root / "site"


@pytest.fixture(scope="session")
def chromium():  # noqa: ANN201
    """Debian's chromium driven by Playwright (never a downloaded browser)."""
    playwright = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (the README's test command does)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@contextmanager
def watched_page(browser, width: int, height: int) -> Iterator:  # noqa: ANN001
    """A fresh page of BROWSER; the test fails if the page raised a JavaScript error."""
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve DIRECTORY on 127.0.0.1 on a free port, in a thread; returns (server, base URL)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="session")
def mini_http(mini_site: Path) -> Iterator[str]:
    """The built mini estate over HTTP."""
    server, base = serve(mini_site)
    yield base
    server.shutdown()
