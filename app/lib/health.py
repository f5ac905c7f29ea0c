"""/health: is the process up and the database reachable."""

from __future__ import annotations

from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text

from app.lib.guards import PUBLIC


@get("/health", opt=PUBLIC, tags=["系统"], summary="健康检查：服务与数据库是否可用")
async def health(state: State) -> Response[dict[str, Any]]:
    try:
        async with state.db_engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure to reach the database is the answer itself
        return Response({"status": "error", "database": "unreachable"}, status_code=503)
    return Response({"status": "ok", "database": "ok"})
