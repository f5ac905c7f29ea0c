"""The audit trail: an append-only, hash-chained log of every change that matters.

``models`` (the chain and its outbox), ``rules`` (the canonical content and its hash), ``services``
(record, enqueue, drain, verify), ``tasks`` (the outbox drain loop of every server process). Every
domain writes to it, so it stands below them all; the pages that read it back by agency are
``app.rosters.audit_log``.
"""
