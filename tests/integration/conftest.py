"""App-level fixtures: the Litestar app on the test database, an HTTP client that speaks CSRF, a world."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import AsyncSession

from app.asgi import create_app
from app.settings import load_settings
from tests.factories import PASSWORD, World, build_world


@pytest.fixture(autouse=True)
def fresh_roster_counts() -> None:
    """Each test's database starts over (its audit ids too): counts remembered by an earlier test
    under the same view and newest audit id must not be taken for this one's."""
    from app.rosters.services import COUNTS

    COUNTS.clear()


@pytest.fixture
async def app(database_url: str, db: AsyncSession, tmp_path: Any) -> AsyncIterator[Litestar]:
    settings = load_settings(
        {
            "APP_ENV": "test",
            "DATABASE_URL": database_url,
            "SECRET_KEY": "t" * 40,
            "APP_VAR_DIR": str(tmp_path),
        }
    )
    application = create_app(settings)
    yield application


class Client:
    """An AsyncTestClient that fetches the CSRF cookie and echoes it in the header, like the pages do."""

    def __init__(self, raw: AsyncTestClient[Litestar]) -> None:
        self.raw = raw

    async def csrf(self) -> str:
        token = self.raw.cookies.get("zf_csrf")
        if not token:
            await self.raw.get("/login")
            token = self.raw.cookies.get("zf_csrf")
        assert token, "no CSRF cookie set"
        return token

    async def get(self, url: str, **kw: Any) -> Any:
        return await self.raw.get(url, **kw)

    async def _unsafe(self, method: str, url: str, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}) or {})
        headers.setdefault("x-csrftoken", await self.csrf())
        return await self.raw.request(method, url, headers=headers, **kw)

    async def post(self, url: str, **kw: Any) -> Any:
        return await self._unsafe("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> Any:
        return await self._unsafe("PUT", url, **kw)

    async def form(self, url: str, data: dict[str, Any], **kw: Any) -> Any:
        """Submit an HTML form the way a browser does: urlencoded, token in the body, HTML accepted."""
        body = {**data, "_csrf_token": await self.csrf()}
        headers = {"accept": "text/html", **kw.pop("headers", {})}
        return await self.raw.post(url, data=body, headers=headers, **kw)

    async def login(self, username: str, password: str = PASSWORD) -> Any:
        r = await self.post("/api/auth/login", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=app, base_url="http://testserver.local") as raw:
        yield Client(raw)


@pytest.fixture
async def world(db: AsyncSession) -> World:
    return await build_world(db)
