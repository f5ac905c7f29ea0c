"""The public pages' database (``DATABASE_READ_URL``): read-only sessions, on the read database when
one is set, the primary otherwise.

Apps of the tests' own, with real sessions (not joined to an outer transaction, where a savepoint
cannot be read-only). The streaming replica itself, with the primary stopped, is
tests/integration/lib/test_replica_failover.py (slow).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.asgi import create_app
from app.certificates import keys
from app.db import make_engine, make_sessionmaker
from app.lib import migrate
from app.lib.actor import SYSTEM
from app.lib.errors import READ_SIDE_DOWN, database_unreachable
from app.settings import Settings, load_settings
from tests.conftest import CreateDatabase
from tests.factories import World, build_world
from tests.integration.conftest import Client
from tests.pgcluster import free_port

SECRET = "t" * 40
JSON = {"accept": "application/json"}
HTML = {"accept": "text/html"}


def _settings(tmp_path: Path, database_url: str, read_url: str = "") -> Settings:
    env = {
        "APP_ENV": "test",
        "DATABASE_URL": database_url,
        "SECRET_KEY": SECRET,
        "APP_VAR_DIR": str(tmp_path),
    }
    if read_url:
        env["DATABASE_READ_URL"] = read_url
    return load_settings(env)


@asynccontextmanager
async def _serve(app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as raw:
        yield Client(raw, app)


async def _register_status(client: Client, number: str) -> str:
    r = await client.get(f"/api/register?q={number}&status=all")
    assert r.status_code == 200, r.text
    [entry] = r.json()["items"]
    return str(entry["status_code"])


async def test_without_read_url_the_public_pages_read_the_primary(
    database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    world = await build_world(db)
    number = world.cert_a.number
    settings = _settings(tmp_path, database_url)
    assert settings.database_read_url == "" and settings.read_url == settings.database_url
    app = create_app(settings)
    assert app.state.db_read_engine is app.state.db_engine
    async with _serve(app) as client:
        r = await client.get(f"/v/{number}", headers=JSON)
        assert r.status_code == 200 and r.json()["status"] == "valid" and r.json()["name"] == "李明", r.text
        page = await client.get(f"/v/{number}", headers=HTML)
        assert page.status_code == 200 and "有效" in page.text and "李明" in page.text
        check = await client.raw.post(
            "/api/public/certificates/check", json={"number": number, "fragment": "not-the-code"}
        )
        assert check.status_code == 200 and check.json()["match"] is False, check.text
        jwks = await client.get("/.well-known/jwks.json")
        assert jwks.status_code == 200 and jwks.json() == {"keys": []}
        assert await _register_status(client, number) == "valid"
        register = await client.get("/register?q=李明", headers=HTML)
        assert register.status_code == 200 and number in register.text
        assert (await client.get("/health")).json() == {"status": "ok", "database": "ok"}
        # The staff side is untouched: a login (it writes) and a list.
        await client.login("admin_a")
        assert (await client.get("/api/officers")).status_code == 200


async def test_read_only_sessions_refuse_a_stray_write(
    database_url: str, db: AsyncSession, tmp_path: Path, backend: str
) -> None:
    """A write slipped into a public page fails loudly (and as a bug: a 500, not a 503)."""
    await build_world(db)
    app = create_app(_settings(tmp_path, database_url))
    stray = update(Agency).values(name=Agency.name)
    try:
        for _ in range(2):  # SQLite: the same pooled connection, switched to read-only and back
            async with app.state.db_read_sessionmaker() as read:
                with pytest.raises(DBAPIError) as refused:
                    await read.execute(stray)
            message = "read-only transaction" if backend == "postgresql" else "readonly database"
            assert message in str(refused.value)
            assert not database_unreachable(refused.value)
            async with app.state.db_write_sessionmaker() as write:
                assert (await write.execute(stray)).rowcount > 0  # type: ignore[attr-defined]
                await write.rollback()
    finally:
        await app.state.db_engine.dispose()


async def _migrated_world(url: str, *, signing_key: bool, revoke: str | None) -> World:
    await asyncio.to_thread(migrate.upgrade, url, "head")
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as s:
            world = await build_world(s)
            if signing_key:
                await keys.key_rotate(s, secret_key=SECRET, actor=SYSTEM)
            if revoke:
                await s.execute(
                    text("UPDATE certificates SET status = 'revoked' WHERE number = :n"), {"n": revoke}
                )
            await s.commit()
        return world
    finally:
        await engine.dispose()


async def test_the_public_pages_read_the_read_database(
    create_database: CreateDatabase, tmp_path: Path
) -> None:
    """Two databases that differ: the primary, where card B was revoked and a signing key made, and
    the read database, a copy from before. The public pages answer from the copy, the staff from the primary."""
    primary_url, copy_url = await create_database(), await create_database()
    world = await _migrated_world(primary_url, signing_key=True, revoke="B2024000001")
    await _migrated_world(copy_url, signing_key=False, revoke=None)
    number = world.cert_b.number
    app = create_app(_settings(tmp_path, primary_url, copy_url))
    assert app.state.db_read_engine is not app.state.db_engine
    async with _serve(app) as client:
        r = await client.get(f"/v/{number}", headers=JSON)
        assert r.status_code == 200 and r.json()["status"] == "valid", r.text
        page = await client.get(f"/v/{number}", headers=HTML)
        assert page.status_code == 200 and "有效" in page.text and "吊销" not in page.text
        assert (await client.get("/.well-known/jwks.json")).json() == {"keys": []}
        assert await _register_status(client, number) == "valid"
        check = await client.raw.post(
            "/api/public/certificates/check", json={"number": number, "fragment": "x"}
        )
        assert check.status_code == 200 and check.json()["number"] == number, check.text
        assert (await client.get("/health")).json() == {"status": "ok", "database": "ok", "replica": "ok"}

        await client.login("sfj_admin")
        staff = await client.get(f"/api/certificates/{world.cert_b.id}")
        assert staff.status_code == 200 and staff.json()["certificate"]["status"] == "revoked", staff.text


async def test_replica_down_the_public_pages_answer_503_and_the_staff_work(
    backend: str, database_url: str, db: AsyncSession, tmp_path: Path
) -> None:
    if backend == "sqlite":
        pytest.skip("a streaming replica is PostgreSQL's: an embedded SQLite file has no server to lose")
    world = await build_world(db)
    number = world.cert_a.number
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"  # nothing listens there
    app = create_app(_settings(tmp_path, database_url, nowhere))
    async with _serve(app) as client:
        for path in (f"/v/{number}", "/.well-known/jwks.json", "/api/register?q=李明"):
            r = await client.get(path, headers=JSON)
            assert r.status_code == 503, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
            assert r.headers["retry-after"] == "5" and r.json()["detail"] == READ_SIDE_DOWN
        page = await client.get(f"/v/{number}", headers=HTML)
        assert page.status_code == 503 and READ_SIDE_DOWN in page.text
        assert page.headers["content-type"].startswith("text/html") and page.headers["retry-after"] == "5"

        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "degraded", "database": "ok", "replica": "unreachable"}
        await client.login("admin_a")
        assert (await client.get("/api/officers")).status_code == 200
