"""Who did it: the actor every audit event names (an account, or the system itself).

Cross-cutting, so that ``app.lib.security`` (the principal's ``actor``) needs no domain to say it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Actor:
    """Who did it: an account, or the system itself (``account_id`` None) for commands and jobs."""

    account_id: int | None
    name: str


SYSTEM = Actor(account_id=None, name="system")

__all__ = ["SYSTEM", "Actor"]
