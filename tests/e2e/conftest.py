"""Browser fixtures: the real server on a fresh demo database, Debian's Chromium driven by Playwright.

The server is the console command an operator runs (``python -m app serve``), started once per session
on a free port after ``db upgrade`` and ``demo-data``. Chromium comes from the system (``apt-get install
chromium``; ``scripts/test.sh`` installs it and exports ``E2E_CHROMIUM``): ``playwright install`` needs
the internet, which CI does not have. The tests use Playwright's sync API, so they are plain ``def``s.

Fixture chain::

    server (session) → browser (session) → desktop / phone (a fresh context and page per test)
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Without the background-networking switches Chromium's own update and sync requests go out first and
# are refused many times over on a machine without internet, which slows every start.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP: dict[str, Any] = {"viewport": {"width": 1366, "height": 900}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
STARTUP_TIMEOUT = 30.0
EXPECT_TIMEOUT_MS = 10_000

# The documented demo logins (app/accounts/demo.py).
CITY_ADMIN = ("shi_admin", "Demo-2026-city")
AUTHORITY = ("sfj_admin", "Demo-2026-admin")
OFFICER = ("zhifa01", "Demo-2026-officer")


@dataclass(frozen=True)
class Server:
    """The running service and the database behind it (read with sqlite3 to find demo people)."""

    base_url: str
    db_path: Path
    log: Path

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.db_path) as conn:
            return conn.execute(sql, params).fetchall()

    def officer_id_number(self, name: str) -> str:
        rows = self.query("SELECT id_number FROM officers WHERE name = ? ORDER BY id", name)
        assert rows, f"demo data has no officer named {name}"
        return str(rows[0][0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_cli(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(  # noqa: S603 - our own console command, fixed arguments
        [sys.executable, "-m", "app", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"`app {' '.join(args)}` failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - http://127.0.0.1 only
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(
        f"the server did not answer {url} within {STARTUP_TIMEOUT:g} s:\n{log.read_text(errors='replace')}"
    )


@contextlib.contextmanager
def running_server(var: Path, *, officers: int = 300) -> Iterator[Server]:
    """``python -m app serve`` on a fresh SQLite database in ``var`` loaded with the demo province."""
    db_path = var / "e2e.db"
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite+aiosqlite:///{db_path}",
        "APP_ENV": "test",
        "APP_VAR_DIR": str(var),
        "SECRET_KEY": secrets.token_hex(20),
        "PYTHONUNBUFFERED": "1",
    }
    _run_cli(env, "db", "upgrade")
    _run_cli(env, "demo-data", "--officers", str(officers))

    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    env["PUBLIC_BASE_URL"] = base_url
    log = var / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(  # noqa: S603 - our own console command, fixed arguments
            [sys.executable, "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_healthy(f"{base_url}/health", proc, log)
        yield Server(base_url=base_url, db_path=db_path, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The server the browser journeys share."""
    with running_server(tmp_path_factory.mktemp("e2e")) as srv:
        yield srv


def _chromium_path() -> str:
    path = os.environ.get("E2E_CHROMIUM") or DEFAULT_CHROMIUM
    if not Path(path).is_file():
        pytest.fail(
            f"Chromium not found at {path}. The browser tests need Debian's chromium "
            "(apt-get install chromium fonts-noto-cjk) or E2E_CHROMIUM pointing at a Chromium binary; "
            "`make test` (scripts/test.sh) installs it. `playwright install` does not work without internet."
        )
    return path


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=_chromium_path(), args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def _page(browser: Browser, server: Server, options: dict[str, Any]) -> Iterator[Page]:
    context = browser.new_context(base_url=server.base_url, locale="zh-CN", **options)
    context.set_default_timeout(EXPECT_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


@contextlib.contextmanager
def another_page(browser: Browser, server: Server, *, phone: bool = False) -> Iterator[Page]:
    """One more person at another machine (own cookies), for journeys with several roles at once."""
    yield from _page(browser, server, PHONE if phone else DESKTOP)


@pytest.fixture
def desktop(browser: Browser, server: Server) -> Iterator[Page]:
    """A desktop-sized page in a fresh context (no cookies), as an admin at the office would use."""
    yield from _page(browser, server, DESKTOP)


@pytest.fixture
def phone(browser: Browser, server: Server) -> Iterator[Page]:
    """A phone-sized page in a fresh context, as an officer checking their hours would use."""
    yield from _page(browser, server, PHONE)


def shot(page: Page, name: str) -> Path:
    """Save a full-page PNG as test-artifacts/e2e/<name>.png for people to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{re.sub(r'[^0-9A-Za-z_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def login(page: Page, username: str, password: str) -> None:
    """Sign in through the login form, as a person would."""
    page.goto("/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    page.wait_for_load_state()
    expect(page).not_to_have_url(re.compile(r"/login"))


def apply_row(admin: Page, name: str) -> Locator:
    """The officer's row on 申领证件 (an administrator's page), paging on until it shows."""
    admin.goto("/certificates/apply")
    expect(admin.get_by_role("heading", name="申领证件")).to_be_visible()
    while True:
        row = admin.get_by_role("row").filter(has=admin.get_by_label(f"选择 {name}", exact=True))
        if row.count():
            return row
        more = admin.get_by_role("link", name="下一页")
        assert more.count(), f"{name} is not on the apply pages"
        more.click()
        admin.wait_for_load_state()
