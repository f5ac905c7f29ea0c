"""Faults: the database becomes unreachable while the service runs, then comes back.

A TCP proxy sits between the app and PostgreSQL; cutting it drops every pooled connection and refuses
new ones, as a crashed database server or a broken network would. While it is cut, every answer is a
clear 503 (problem+json for the API, the HTML error page for browsers, ``/health`` says so) with
``Retry-After``, and a write attempted then leaves nothing behind. When the proxy is restored the same
app recovers by itself (pool pre-ping), without a restart.

SQLite is embedded in the process: it cannot become unreachable while the process runs, so the
SQLite half of this module is skipped with that reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from app.asgi import create_app
from app.lib.errors import PRIMARY_DOWN
from app.settings import load_settings
from tests.factories import World, make_id_number
from tests.integration.conftest import Client


class CuttableProxy:
    """A byte-for-byte TCP relay to ``target`` that can be cut (all links dropped, port closed).

    It runs on an event loop of its own in a thread: the test client drives the app from another
    thread, so a relay on the test's loop would stall whenever the client blocks on a request.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def start(self) -> None:
        self._run(self._start())

    def cut(self) -> None:
        self._run(self._cut())

    def close(self) -> None:
        if self._server is not None:
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        await self._server.wait_closed()
        self._server = None

    async def _link(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.close()
            return
        self._writers.update((client_w, server_w))

        async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))


@pytest.fixture
async def proxied_client(
    backend: str, database_url: str, db: AsyncSession, tmp_path: Any
) -> AsyncIterator[tuple[Client, CuttableProxy]]:
    if backend == "sqlite":
        pytest.skip("SQLite is embedded in the process: it cannot become unreachable while the app runs")
    url = make_url(database_url)
    proxy = CuttableProxy(url.host or "127.0.0.1", url.port or 5432)
    proxy.start()
    proxied = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    settings = load_settings(
        {"APP_ENV": "test", "DATABASE_URL": proxied, "SECRET_KEY": "t" * 40, "APP_VAR_DIR": str(tmp_path)}
    )
    app = create_app(settings)
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as raw:
        yield Client(raw), proxy
    proxy.close()


def _officer_body(world: World) -> dict[str, object]:
    return {
        "name": "断线测试",
        "id_number": make_id_number(region="320100"),
        "agency_id": world.dept_a.id,
        "staff_type": "civil_servant",
        "post": "enforcement",
        "field": "市场监管",
        "area": "甲市",
    }


async def test_unreachable_database_answers_503_and_recovers(
    proxied_client: tuple[Client, CuttableProxy], world: World, db: AsyncSession
) -> None:
    client, proxy = proxied_client
    await client.login("admin_a")
    assert (await client.get("/api/officers")).status_code == 200
    csrf = await client.csrf()

    proxy.cut()
    r = await client.get("/api/officers")
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.headers["retry-after"] == "5"
    assert PRIMARY_DOWN in r.json()["detail"]

    page = await client.get("/officers", headers={"accept": "text/html"})
    assert page.status_code == 503
    assert page.headers["content-type"].startswith("text/html") and PRIMARY_DOWN in page.text

    # (signed in, the session's account cannot be loaded either: a 503 problem rather than the probe body)
    assert (await client.get("/health")).status_code == 503

    before = await db.scalar(select(func.count()).select_from(Officer))
    await db.commit()  # end the snapshot so the count after recovery sees what happened since
    write = await client.post("/api/officers", json=_officer_body(world), headers={"x-csrftoken": csrf})
    assert write.status_code == 503, write.text

    proxy.start()  # the database is back, on the same address
    answers = [(await client.get("/api/officers")).status_code for _ in range(3)]
    assert answers[-1] == 200 and 500 not in answers, answers
    assert (await client.get("/health")).json() == {"status": "ok", "database": "ok"}
    # The write attempted during the outage left nothing behind.
    assert await db.scalar(select(func.count()).select_from(Officer)) == before
