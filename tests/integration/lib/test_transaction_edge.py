"""One transaction per request at the edge: 2xx/3xx commit, anything else rolls back, handlers never commit.

The routes below write with the request's ``db`` and never call ``commit()`` or ``rollback()``
themselves; what reaches the database is decided by ``app.lib.web.transaction_edge``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar import Litestar, Request, get, post
from litestar.datastructures import State
from litestar.di import Provide
from litestar.response import Redirect, Response
from litestar.testing import AsyncTestClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Agency
from app.db import make_engine, make_sessionmaker
from app.lib.errors import DomainError, exception_handler
from app.lib.web import (
    Db,
    close_unsent,
    form_post,
    keep_refusal,
    provide_db,
    provide_write_db,
    transaction_edge,
)

Req = Request[Any, Any, Any]

# The app under test has an engine of its own: what it commits is real, and emptied after each test.
pytestmark = pytest.mark.commits


async def _add(db: AsyncSession, name: str) -> None:
    db.add(Agency(name=name, region_code="110101", level="county", kind="government", path="/"))
    await db.flush()


@post("/json-ok")
async def json_ok(db: Db) -> dict[str, str]:
    await _add(db, "边缘提交一")
    return {"ok": "yes"}


@post("/json-refused", status_code=200)
async def json_refused(db: Db) -> None:
    await _add(db, "边缘拒绝一")
    raise DomainError("拒绝", field="name")


@post("/returns-422")
async def returns_422(db: Db) -> Response[dict[str, bool]]:
    await _add(db, "边缘拒绝二")
    return Response({"ok": False}, status_code=422)


@post("/form-ok")
async def form_ok(db: Db) -> Response[Any]:
    return await form_post(
        db, lambda: _add(db, "边缘表单一"), redirect="/done", rerender=lambda exc: _page(exc)
    )


@post("/form-refused")
async def form_refused(db: Db) -> Response[Any]:
    async def call() -> None:
        await _add(db, "边缘表单二")
        raise DomainError("名称有误", field="name")

    return await form_post(db, call, redirect="/done", rerender=lambda exc: _page(exc, db))


async def _page(exc: DomainError, db: AsyncSession | None = None) -> Response[Any]:
    # The re-rendered form reads the database again: the refused call's row is gone already.
    seen = (
        [] if db is None else (await db.scalars(select(Agency.name).where(Agency.name.like("边缘%")))).all()
    )
    return Response({"errors": exc.form_errors(("name",)), "seen": list(seen)}, status_code=exc.status_code)


@post("/kept-refusal", status_code=200)
async def kept_refusal(request: Req, db: Db) -> None:
    keep_refusal(request)  # a refusal on record: a wrong password counted, a rejected sheet kept
    await _add(db, "边缘留存")
    raise DomainError("拒绝，但留有记录")


@post("/kept-then-crashed", status_code=200)
async def kept_then_crashed(request: Req, db: Db) -> None:
    keep_refusal(request)
    await _add(db, "边缘崩溃")
    raise RuntimeError("not a refusal: nothing may stay")


@get("/write-get", dependencies={"db": Provide(provide_write_db)})
async def write_get(db: Db) -> Redirect:
    await _add(db, "边缘读写")
    return Redirect("/elsewhere", status_code=303)


@pytest.fixture
async def edge_client(database_url: str) -> AsyncIterator[AsyncTestClient[Litestar]]:
    # An engine of the app's own: the test client runs the app on another event loop.
    engine = make_engine(database_url)
    app = Litestar(
        route_handlers=[
            json_ok,
            json_refused,
            returns_422,
            form_ok,
            form_refused,
            kept_refusal,
            kept_then_crashed,
            write_get,
        ],
        state=State(
            {
                "db_sessionmaker": make_sessionmaker(engine, write=False),
                "db_write_sessionmaker": make_sessionmaker(engine),
            }
        ),
        dependencies={"db": Provide(provide_db)},
        before_send=[transaction_edge],
        after_response=close_unsent,
        exception_handlers={Exception: exception_handler},
        on_shutdown=[engine.dispose],
    )
    app.state.engine = engine
    async with AsyncTestClient(app=app) as client:
        yield client


async def _names(db: Db) -> list[str]:
    await db.rollback()  # a fresh snapshot
    return sorted((await db.scalars(select(Agency.name).where(Agency.name.like("边缘%")))).all())


@pytest.mark.parametrize(
    ("path", "status", "kept"),
    [
        ("/json-ok", 201, ["边缘提交一"]),
        ("/json-refused", 400, []),
        ("/returns-422", 422, []),
        ("/form-ok", 303, ["边缘表单一"]),
        ("/form-refused", 400, []),
        ("/kept-refusal", 400, ["边缘留存"]),
        ("/kept-then-crashed", 500, []),
    ],
)
async def test_the_response_status_decides_what_stays(
    edge_client: AsyncTestClient[Litestar], db: AsyncSession, path: str, status: int, kept: list[str]
) -> None:
    r = await edge_client.post(path, follow_redirects=False)
    assert r.status_code == status, r.text
    assert await _names(db) == kept


async def test_a_refused_form_is_re_rendered_from_the_database_as_before(
    edge_client: AsyncTestClient[Litestar], db: AsyncSession
) -> None:
    r = await edge_client.post("/form-refused", follow_redirects=False)
    assert r.status_code == 400
    assert r.json() == {"errors": {"name": "名称有误"}, "seen": []}


async def test_a_get_with_write_intent_commits_on_its_redirect(
    edge_client: AsyncTestClient[Litestar], db: AsyncSession
) -> None:
    r = await edge_client.get("/write-get", follow_redirects=False)
    assert r.status_code == 303
    assert await _names(db) == ["边缘读写"]


async def test_no_connection_is_left_checked_out(
    edge_client: AsyncTestClient[Litestar],
    db: AsyncSession,  # db: its teardown empties what was committed
) -> None:
    for path in ("/json-ok", "/json-refused", "/form-refused", "/returns-422"):
        await edge_client.post(path, follow_redirects=False)
    assert edge_client.app.state.engine.pool.checkedout() == 0
