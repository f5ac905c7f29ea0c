"""The audit log viewer (审计日志): the audit trail read back, scoped to the reader's agency subtree.

The trail itself (models, hashing, the outbox drain) is ``app.audit``, below every domain that
writes to it; reading it by agency needs the agency tree of accounts, so the reader lives here, on
the read side, and nothing runs back up a floor.
"""

from app.rosters.audit_log.controllers import ROUTES

__all__ = ["ROUTES"]
