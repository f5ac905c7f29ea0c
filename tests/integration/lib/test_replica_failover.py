"""Fault: the primary stopped while a streaming replica serves the public pages (DATABASE_READ_URL).

A PostgreSQL primary and a ``pg_basebackup -R`` hot standby of their own (tests/pgcluster.py), the
primary migrated and loaded with the test world, the app in process on both. What must hold:

- the public pages (verify page and JSON, the QR check, JWKS, the register) read the replica and
  never the primary: with the replica's replay paused, a card revoked and a key made on the primary
  stay unseen there (what a replica's lag looks like), and appear once it has caught up;
- ``pg_ctl stop -m immediate`` on the primary: verification keeps answering 200 with each card's
  status; every route that needs the primary answers 503 with the Chinese maintenance message and
  Retry-After, as JSON and as the HTML page; nothing answers 500; /health says which side is down;
- the primary started again: the app recovers by itself, and the write refused meanwhile left
  nothing behind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select, text

from app.accounts.models import Officer
from app.asgi import create_app
from app.certificates import keys
from app.db import make_engine, make_sessionmaker
from app.lib import migrate
from app.lib.actor import SYSTEM
from app.lib.errors import PRIMARY_DOWN
from app.settings import load_settings
from tests.factories import World, build_world
from tests.integration.conftest import Client, InLoopTransport
from tests.integration.lib.test_faults import _officer_body
from tests.pgcluster import Node, PgCluster

pytestmark = pytest.mark.slow  # a PostgreSQL primary and replica of its own, the primary crashed

SECRET = "t" * 40
JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}


@pytest.fixture
def cluster() -> Iterator[tuple[PgCluster, Node, Node]]:
    with PgCluster() as c:
        primary = c.start_primary()
        replica = c.add_replica()
        yield c, primary, replica


@asynccontextmanager
async def _client(app: Litestar) -> AsyncIterator[Client]:
    """A client of ``app`` on the test's event loop (two of them share the app and its pools)."""
    transport = InLoopTransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver.local") as raw:
        yield Client(raw, app)


async def _load(primary: Node) -> World:
    await asyncio.to_thread(migrate.upgrade, primary.url, "head")
    engine = make_engine(primary.url)
    try:
        async with make_sessionmaker(engine)() as s:
            world = await build_world(s)
            await keys.key_rotate(s, secret_key=SECRET, actor=SYSTEM)
            await s.commit()
        return world
    finally:
        await engine.dispose()


async def _on_primary(primary: Node, statement: str) -> None:
    """Revoke a card and make a new signing key (or whatever ``statement`` does), committed."""
    engine = make_engine(primary.url)
    try:
        async with make_sessionmaker(engine)() as s:
            await s.execute(text(statement))
            await keys.key_rotate(s, secret_key=SECRET, actor=SYSTEM)
            await s.commit()
    finally:
        await engine.dispose()


def _pause_replay(replica: Node) -> None:
    replica.sql("SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + 10
    while replica.sql("SELECT pg_get_wal_replay_pause_state()") != "paused":
        assert time.monotonic() < deadline, "the replica did not pause its replay"
        time.sleep(0.05)


class Public:
    """The public side's answers about one card number, each checked for a 200."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seen: list[tuple[str, int]] = []

    async def _get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        r = await self.client.get(path, headers=headers)
        self.seen.append((path, r.status_code))
        assert r.status_code == 200, (path, r.status_code, r.text)
        return r

    async def status(self, number: str) -> str:
        return str((await self._get(f"/v/{number}", JSON)).json()["status"])

    async def page(self, number: str) -> str:
        return (await self._get(f"/v/{number}", HTML)).text

    async def register_status(self, number: str) -> str:
        items = (await self._get(f"/api/register?q={number}&status=all", JSON)).json()["items"]
        return str(items[0]["status_code"])

    async def kids(self) -> set[str]:
        return {k["kid"] for k in (await self._get("/.well-known/jwks.json", JSON)).json()["keys"]}


async def test_verification_answers_from_the_replica_while_the_primary_is_down(
    cluster: tuple[PgCluster, Node, Node], tmp_path: Path
) -> None:
    pg, primary, replica = cluster
    world = await _load(primary)
    a, b = world.cert_a.number, world.cert_b.number
    pg.wait_caught_up(replica)
    settings = load_settings(
        {
            "APP_ENV": "test",
            "DATABASE_URL": primary.url,
            "DATABASE_READ_URL": replica.url,
            "SECRET_KEY": SECRET,
            "APP_VAR_DIR": str(tmp_path),
        }
    )
    app = create_app(settings)
    async with app.lifespan(), _client(app) as anyone, _client(app) as staff:
        public = Public(anyone)
        await staff.login("sfj_admin")
        csrf = await staff.csrf()
        first_kids = await public.kids()
        assert len(first_kids) == 1 and await public.status(b) == "valid"

        # 1. The public pages read the replica: with its replay paused, the primary's news stays unseen.
        _pause_replay(replica)
        await _on_primary(primary, f"UPDATE certificates SET status = 'revoked' WHERE number = '{b}'")
        staff_view = await staff.get(f"/api/certificates/{world.cert_b.id}")
        assert staff_view.json()["certificate"]["status"] == "revoked"  # the staff read the primary
        assert await public.status(b) == "valid"
        assert "有效" in await public.page(b) and await public.register_status(b) == "valid"
        assert await public.kids() == first_kids
        replica.sql("SELECT pg_wal_replay_resume()")
        pg.wait_caught_up(replica)
        assert await public.status(b) == "revoked" and await public.register_status(b) == "revoked"
        all_kids = await public.kids()
        assert len(all_kids) == 2 and first_kids < all_kids

        # 2. The primary crashes.
        primary.stop(mode="immediate")
        assert await public.status(a) == "valid" and await public.status(b) == "revoked"
        page = await public.page(a)
        assert "有效" in page and "李明" in page
        assert "吊销" in await public.page(b)
        assert await public.register_status(a) == "valid" and await public.kids() == all_kids
        register = await public._get("/register?q=王芳&status=all", HTML)
        assert b in register.text
        check = await anyone.raw.post("/api/public/certificates/check", json={"number": a, "fragment": "x"})
        assert check.status_code == 200 and check.json()["number"] == a, check.text
        health = await anyone.get("/health")
        assert health.status_code == 200
        body = health.json()
        # A standby reports its lag: nothing left to replay once the primary is gone.
        assert body.pop("replica_lag_seconds") == 0, body
        assert body == {"status": "degraded", "database": "unreachable", "replica": "ok"}

        refused: list[httpx.Response] = [
            await staff.post("/api/officers", json=_officer_body(world), headers={"x-csrftoken": csrf}),
            await staff.get("/api/officers"),
            await staff.get("/officers", headers=HTML),
            await staff.form("/officers/new", {k: str(v) for k, v in _officer_body(world).items()}),
            await anyone.post("/api/auth/login", json={"username": "admin_a", "password": "x"}),
        ]
        for r in refused:
            assert r.status_code == 503, (r.request.url, r.status_code, r.text)
            assert r.headers["retry-after"] == "5" and PRIMARY_DOWN in r.text
        assert refused[0].headers["content-type"].startswith("application/problem+json")
        assert refused[0].json()["detail"] == PRIMARY_DOWN
        assert refused[2].headers["content-type"].startswith("text/html")
        assert refused[3].headers["content-type"].startswith("text/html")
        assert all(status != 500 for _, status in public.seen)

        # 3. The primary is back: the app reconnects by itself; the refused write left nothing.
        primary.start()
        answers = [(await staff.get("/api/officers")).status_code for _ in range(3)]
        assert answers[-1] == 200 and 500 not in answers, answers
        body = (await anyone.get("/health")).json()
        assert 0 <= body.pop("replica_lag_seconds") < 60, body
        assert body == {"status": "ok", "database": "ok", "replica": "ok"}
    engine = make_engine(primary.url)
    try:
        async with engine.connect() as conn:
            named = select(func.count()).select_from(Officer).where(Officer.name == "断线测试")
            assert await conn.scalar(named) == 0
    finally:
        await engine.dispose()
