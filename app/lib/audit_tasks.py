"""Transitional: the outbox drain moved to ``app.audit.tasks``; re-imported here until the imports
of other branches are rewritten, then this module goes."""

from __future__ import annotations

from app.audit.tasks import DRAIN_SECONDS, drain_forever, start_drain, stop_drain

__all__ = ["DRAIN_SECONDS", "drain_forever", "start_drain", "stop_drain"]
