"""The audit trail's use cases: record, enqueue, drain and verify.

Appends are serialised (a PostgreSQL advisory lock; SQLite's single writer) so the chain never forks.

Hot paths that must not queue on that lock (exam day: thousands of starts, saves and submits a
minute) write their events to ``audit_outbox`` instead (``audit_enqueue``: a plain insert in the
caller's transaction, committed or rolled back with the change). ``audit_drain`` moves them into the
chain in batches, in outbox order, keeping each event's own time; every server process drains every
second (``app.audit.tasks``), and ``app audit verify`` drains before it checks, so the trail holds
every committed event, tamper-evidently, within seconds.

No function here commits: each runs in its caller's transaction (a request's edge, a console
command's session, the drain task's batch).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import EllipsisType
from typing import Any, Protocol, cast

from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession

from app.audit.models import AuditEvent, AuditOutbox
from app.audit.rules import GENESIS, _content, chain_hash, event_fields
from app.db import insert_many
from app.lib.actor import Actor
from app.lib.clock import utcnow
from app.lib.security import Principal, actor_of

_ADVISORY_LOCK_KEY = 7_270_001


async def audit_record(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    agency_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event inside the caller's transaction; it commits or rolls back with the change."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    prev = (
        await session.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1))
    ).scalar_one_or_none() or GENESIS
    fields = event_fields(actor, action, entity_type, entity_id, agency_id, data, utcnow())
    event = AuditEvent(**fields, prev_hash=prev, hash=chain_hash(prev, _content(**fields)))
    session.add(event)
    await session.flush()
    return event


class Audited(Protocol):
    """A row the trail files events against. Its class names the entity type
    (``__audit_entity__ = "exam_session"``); its events are filed under its ``agency_id``, or under
    ``audit_agency_id`` where the class defines one (an agency under itself)."""

    __audit_entity__: str
    id: Any


def entity_of(row: Audited) -> tuple[str, Any, int | None]:
    """Where the trail files an event on ``row``: its entity type, its id and its agency."""
    agency_id = getattr(row, "audit_agency_id", getattr(row, "agency_id", None))
    return row.__audit_entity__, row.id, agency_id


async def audit_change(
    session: AsyncSession,
    who: Principal | Actor,
    action: str,
    row: Audited,
    data: dict[str, Any] | None = None,
    *,
    agency_id: int | EllipsisType | None = ...,
    queued: bool = False,
) -> AuditEvent | None:
    """``audit_record`` of ``who``'s ``action`` on ``row``, filed where ``entity_of`` says (under
    ``agency_id`` instead when it is given). A principal is named as ``actor_of`` names it
    (``system`` for a console command). ``queued``: through ``audit_enqueue`` instead (the hot
    paths: no wait for the chain's lock; chained within seconds), and None back."""
    entity_type, entity_id, own_agency = entity_of(row)
    record = audit_enqueue if queued else audit_record
    return await record(
        session,
        actor=actor_of(who) if isinstance(who, Principal) else who,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        agency_id=own_agency if agency_id is ... else agency_id,
        data=data,
    )


async def audit_enqueue(
    session: AsyncSession,
    *,
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    agency_id: int | None = None,
    data: dict[str, Any] | None = None,
    occurred_at: dt.datetime | None = None,
) -> None:
    """Record one event inside the caller's transaction without taking the chain's lock: it commits
    or rolls back with the change, and ``audit_drain`` chains it (within a second on a server)."""
    fields = event_fields(actor, action, entity_type, entity_id, agency_id, data, occurred_at or utcnow())
    # A Core insert with parameters (compiled once): the ORM's insert().values() costs more to
    # build than to run, and the submit burst writes one of these per candidate.
    await session.execute(_OUTBOX_INSERT, fields)


_OUTBOX_INSERT = insert(cast(Table, AuditOutbox.__table__))


_CONTENT_COLUMNS = (
    "occurred_at",
    "actor_id",
    "actor_name",
    "action",
    "entity_type",
    "entity_id",
    "agency_id",
    "data",
)
"""An event's content: the columns the outbox holds and the chain hashes (``rules._content``)."""


DRAIN_BATCH = 2000


async def audit_drain(session: AsyncSession, *, batch: int = DRAIN_BATCH) -> int:
    """Chain up to ``batch`` outbox events (oldest first) into the audit log and remove them from
    the outbox under the chain's lock, in the caller's transaction. Returns how many.

    The caller ends the transaction (which releases the lock): ``app.audit.tasks`` commits each batch."""
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        return await _drain_postgresql(session, batch)
    return await session.run_sync(lambda s: drain_sqlite(s.connection(), batch))


def drain_sqlite(conn: Connection, batch: int) -> int:
    """The drain on SQLite, synchronous: SQLite's single writer holds the file, so the next ids are
    the head's successors. Run through a session (``audit_drain``) or, by the server's drain task,
    on a connection of its own in a thread (``app.audit.tasks``): there the batch holds the write
    lock for its statements only, not for a round trip through a busy event loop per statement."""
    rows = conn.execute(
        select(AuditOutbox.id, *(getattr(AuditOutbox, c) for c in _CONTENT_COLUMNS))
        .order_by(AuditOutbox.id)
        .limit(batch)
    ).all()
    if not rows:
        return 0
    prev = (
        conn.execute(select(AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)).scalar_one_or_none()
        or GENESIS
    )
    head = conn.execute(select(func.max(AuditEvent.id))).scalar_one_or_none() or 0
    conn.execute(insert(AuditEvent), _chained(rows, prev, range(head + 1, head + 1 + len(rows))))
    conn.execute(delete(AuditOutbox).where(AuditOutbox.id.in_([r[0] for r in rows])))
    return len(rows)


_TAKE_OUTBOX = text(
    f"""DELETE FROM audit_outbox WHERE id IN (SELECT id FROM audit_outbox ORDER BY id LIMIT :n)
    RETURNING id, {", ".join(_CONTENT_COLUMNS)}"""
).columns(AuditOutbox.id, *(getattr(AuditOutbox, c) for c in _CONTENT_COLUMNS))
"""Take the oldest events out of the outbox, in one statement (the drain holds the chain's lock, so
no other drain takes them too); typed, so the time comes back as ``UTCDateTime`` reads it."""

_HEAD_AND_IDS = text(
    """SELECT (SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1),
    ARRAY(SELECT nextval(pg_get_serial_sequence('audit_events', 'id')) FROM generate_series(1, :n))"""
)
"""The chain's head and the ids of the next events, in one round trip."""


async def _drain_postgresql(session: AsyncSession, batch: int) -> int:
    """The drain in four statements (lock, take, head and ids, insert): each tick of every server
    process runs it, and on exam day the outbox takes ~670 events a second."""
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_LOCK_KEY})
    rows = sorted((await session.execute(_TAKE_OUTBOX, {"n": batch})).all(), key=lambda r: r[0])
    if not rows:
        return 0
    prev, ids = (await session.execute(_HEAD_AND_IDS, {"n": len(rows)})).one()
    # The chain is checked in id order: the ids are handed out in order, so the order in which the
    # database evaluates a multi-row insert cannot matter.
    await insert_many(session, AuditEvent.__table__, _chained(rows, prev or GENESIS, sorted(ids)))
    return len(rows)


def _chained(rows: Sequence[Any], prev: str, ids: Iterable[int]) -> list[dict[str, Any]]:
    """The audit events of outbox ``rows`` (id, then ``_CONTENT_COLUMNS``), chained after ``prev``."""
    events = []
    for event_id, row in zip(ids, rows, strict=True):
        fields = dict(zip(_CONTENT_COLUMNS, row[1:], strict=True))
        digest = chain_hash(prev, _content(**fields))
        events.append({"id": event_id, **fields, "prev_hash": prev, "hash": digest})
        prev = digest
    return events


@dataclass(frozen=True)
class ChainReport:
    checked: int
    first_bad_id: int | None
    reason: str
    head_id: int | None = None
    head_hash: str | None = None
    """The last event verified: written down outside the database (an anchor), it lets a later run
    prove that nothing up to it was cut off or rewritten — the chain alone cannot show that, since
    whoever can write the table can also recompute every hash after a change."""

    @property
    def ok(self) -> bool:
        return self.first_bad_id is None


async def audit_verify(
    session: AsyncSession, *, batch: int = 5000, anchor: tuple[int, str] | None = None
) -> ChainReport:
    """Walk the whole chain in id order and recompute every hash.

    ``anchor`` is an (id, hash) pair from an earlier report's head: the chain must still hold that
    event with that hash, else it was truncated or rewritten since the anchor was taken.
    """
    prev = GENESIS
    checked = 0
    head_id: int | None = None
    anchor_seen = anchor is None
    stream = await session.stream(
        select(AuditEvent).order_by(AuditEvent.id).execution_options(yield_per=batch)
    )
    async for ev in stream.scalars():
        if ev.prev_hash != prev:
            return ChainReport(checked, ev.id, "上一条记录的哈希不匹配（记录被删除、插入或篡改）")
        content = _content(**{c: getattr(ev, c) for c in _CONTENT_COLUMNS})
        if chain_hash(prev, content) != ev.hash:
            return ChainReport(checked, ev.id, "记录内容与其哈希不符（记录被篡改）")
        if anchor is not None and ev.id == anchor[0]:
            if ev.hash != anchor[1]:
                return ChainReport(checked, ev.id, "与留存的审计锚点不符（锚点之前的记录被改写）")
            anchor_seen = True
        prev = ev.hash
        head_id = ev.id
        checked += 1
    if not anchor_seen:
        assert anchor is not None
        return ChainReport(checked, anchor[0], "留存的审计锚点已不在链中（记录被截断或删除）", head_id, prev)
    return ChainReport(checked, None, "审计链完整", head_id, prev if head_id is not None else None)
