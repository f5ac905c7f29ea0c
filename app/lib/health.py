"""/health: is the process up, can it reach the primary, the read replica and the shared rate store.

``database`` is the primary (``DATABASE_URL``); ``replica`` (``DATABASE_READ_URL``) is reported only
when one is configured, with ``replica_lag_seconds`` when it is a PostgreSQL standby (0 when it has
replayed all it received, else the age of its last replayed transaction); ``rate_limits`` only when
``REDIS_URL`` is set. 503 only when the process can answer nothing from the database: with a
replica, a primary that is down leaves the public verification answering, so the process stays in a
load balancer's rotation (200, ``"status": "degraded"``) and its staff routes answer 503 themselves.
Also ``degraded`` (200): a replica more than ``REPLICA_LAG_LIMIT`` seconds behind (the public pages
show cards as they were), and a Redis that does not answer (each process counts its own limits).
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Response, get
from litestar.datastructures import State
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.lib.guards import PUBLIC
from app.lib.ratelimit import SharedStore

PROBE_SECONDS = 3.0
"""A database that does not answer a ``SELECT 1`` this fast counts as unreachable: a probe that hangs
(a host gone from the network) would hang the load balancer's check too."""


REPLICA_LAG_LIMIT = 60.0
"""Seconds a replica may trail the primary before /health calls the instance degraded."""

_LAG = text(
    "SELECT CASE WHEN NOT pg_is_in_recovery() THEN NULL"
    " WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0"
    " ELSE EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) END"
)
"""A standby's lag: 0 when it has replayed everything it received (an idle primary sends nothing, so
the last replayed transaction's age alone would grow), else that age; NULL on a primary."""


async def _probe(engine: AsyncEngine, *, lag: bool = False) -> tuple[str, float | None]:
    """``("ok", lag)`` or ``("unreachable", None)``; ``lag``: also the standby's lag (PostgreSQL)."""

    async def select_1() -> float | None:
        async with engine.connect() as conn:
            if lag and engine.dialect.name == "postgresql":
                seconds = (await conn.execute(_LAG)).scalar()
                return None if seconds is None else round(float(seconds), 3)
            await conn.execute(text("SELECT 1"))
            return None

    try:
        seconds = await asyncio.wait_for(select_1(), PROBE_SECONDS)
    except Exception:  # any failure to reach the database is the answer itself
        return "unreachable", None
    return "ok", seconds


@get(
    "/health",
    opt=PUBLIC,
    tags=["系统"],
    summary="健康检查：服务、数据库（主库、只读副本及其延迟）与限流存储是否可用",
)
async def health(state: State) -> Response[dict[str, Any]]:
    store: SharedStore | None = state.rate_store
    with_replica = state.db_read_engine is not state.db_engine

    async def replica_probe() -> tuple[str, float | None]:
        return await _probe(state.db_read_engine, lag=True) if with_replica else ("", None)

    async def store_probe() -> str:
        return await store.ping() if store is not None else ""

    (primary, _), (replica, lag), limits = await asyncio.gather(
        _probe(state.db_engine), replica_probe(), store_probe()
    )
    body: dict[str, Any] = {"status": "ok", "database": primary}
    if with_replica:
        body["replica"] = replica
        if lag is not None:
            body["replica_lag_seconds"] = lag
    if limits:
        body["rate_limits"] = limits
    up = primary == "ok" or replica == "ok"
    lagging = lag is not None and lag > REPLICA_LAG_LIMIT
    if not up:
        body["status"] = "error"
    elif "unreachable" in (primary, replica, limits) or lagging:
        body["status"] = "degraded"
    return Response(body, status_code=200 if up else 503)
