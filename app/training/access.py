"""Who and where in the training domain: the stamp on what a principal enters, the courses they see.

Scope: an administrator sees the officers of their agency subtree and their ledger lines; an
officer sees only their own. Courses are visible down the tree and up it: an agency records its
officers' attendance at its own courses, its subtree's and those organised above it (a province's
course for every city), never at a sibling's. Anything out of scope is reported as not found.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement

from app.accounts.selectors import agency_in_line
from app.lib.actor import SYSTEM
from app.lib.errors import Forbidden
from app.lib.security import Principal


def entered_by(principal: Principal) -> tuple[int | None, str]:
    """(account id, name) stamped on every ledger line and course: who made it."""
    if principal.account_id == 0:
        return None, SYSTEM.name
    return principal.account_id, principal.username


def course_visible(principal: Principal) -> ColumnElement[bool]:
    """Courses of the principal's subtree and of the agencies above it (``Agency`` joined)."""
    return agency_in_line(principal.agency_path)


def require_admin(principal: Principal, action: str) -> None:
    if not principal.is_admin:
        raise Forbidden(f"只有管理员可以{action}")


__all__ = ["course_visible", "entered_by", "require_admin"]
