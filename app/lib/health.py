"""/health: is the process up, and can it reach the primary and (when configured) the read replica.

``database`` is the primary (``DATABASE_URL``); ``replica`` (``DATABASE_READ_URL``) is reported only
when one is configured. 503 only when the process can answer nothing from the database: with a
replica, a primary that is down leaves the public verification answering, so the process stays in a
load balancer's rotation (200, ``"status": "degraded"``) and its staff routes answer 503 themselves.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.lib.guards import PUBLIC

PROBE_SECONDS = 3.0
"""A database that does not answer a ``SELECT 1`` this fast counts as unreachable: a probe that hangs
(a host gone from the network) would hang the load balancer's check too."""


async def _probe(engine: AsyncEngine) -> str:
    async def select_1() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(select_1(), PROBE_SECONDS)
    except Exception:  # any failure to reach the database is the answer itself
        return "unreachable"
    return "ok"


@get("/health", opt=PUBLIC, tags=["系统"], summary="健康检查：服务与数据库（主库、只读副本）是否可用")
async def health(state: State) -> Response[dict[str, Any]]:
    if state.db_read_engine is state.db_engine:
        primary = await _probe(state.db_engine)
        ok = primary == "ok"
        return Response(
            {"status": "ok" if ok else "error", "database": primary}, status_code=200 if ok else 503
        )
    primary, replica = await asyncio.gather(_probe(state.db_engine), _probe(state.db_read_engine))
    status = {("ok", "ok"): "ok", ("unreachable", "unreachable"): "error"}.get((primary, replica), "degraded")
    body = {"status": status, "database": primary, "replica": replica}
    return Response(body, status_code=503 if status == "error" else 200)
