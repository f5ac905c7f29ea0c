"""Transitional: the audit trail moved to ``app.audit`` (a domain of its own); ``Actor``/``SYSTEM``
to ``app.lib.actor``. These names are re-imported so that branches written against this module
keep working until their imports are rewritten; then this module goes.
"""

from __future__ import annotations

from app.audit.models import AuditEvent, AuditOutbox
from app.audit.rules import GENESIS, _content, canonical_json, chain_hash, event_fields
from app.audit.services import (
    DRAIN_BATCH,
    ChainReport,
    audit_drain,
    audit_enqueue,
    audit_record,
    audit_verify,
)
from app.audit.tasks import audit_drain_all
from app.lib.actor import SYSTEM, Actor

__all__ = [
    "DRAIN_BATCH",
    "GENESIS",
    "SYSTEM",
    "Actor",
    "AuditEvent",
    "AuditOutbox",
    "ChainReport",
    "_content",
    "audit_drain",
    "audit_drain_all",
    "audit_enqueue",
    "audit_record",
    "audit_verify",
    "canonical_json",
    "chain_hash",
    "event_fields",
]
