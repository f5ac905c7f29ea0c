"""The chain's arithmetic: an event's canonical content and its hash chained to the previous one.

Pure: no session, no clock. Each row stores the SHA-256 of the previous row (``prev_hash``) and of
its own canonical content chained to it (``hash``), so changing, inserting or deleting a row
anywhere breaks the chain from that point on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from app.lib.actor import Actor

GENESIS = "0" * 64
"""The ``prev_hash`` of the first event."""


def canonical_json(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)


def _content(
    *,
    occurred_at: dt.datetime,
    actor_id: int | None,
    actor_name: str,
    action: str,
    entity_type: str,
    entity_id: str,
    agency_id: int | None,
    data: str,
) -> str:
    return canonical_json(
        {
            "at": occurred_at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "actor_id": actor_id,
            "actor": actor_name,
            "action": action,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "agency_id": agency_id,
            "data": data,
        }
    )


def chain_hash(prev_hash: str, content: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{content}".encode()).hexdigest()


def event_fields(
    actor: Actor,
    action: str,
    entity_type: str,
    entity_id: str | int,
    agency_id: int | None,
    data: dict[str, Any] | None,
    occurred_at: dt.datetime,
) -> dict[str, Any]:
    """An event's columns, as the chain and the outbox both store them."""
    return {
        "occurred_at": occurred_at,
        "actor_id": actor.account_id,
        "actor_name": actor.name,
        "action": action,
        "entity_type": entity_type,
        "entity_id": str(entity_id),
        "agency_id": agency_id,
        "data": canonical_json(data or {}),
    }
