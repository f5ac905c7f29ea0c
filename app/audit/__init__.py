"""The audit trail: an append-only, hash-chained log of every change that matters.

``models`` (the chain and its outbox), ``rules`` (the canonical content and its hash), ``services``
(record, enqueue, drain, verify), ``selectors`` (the trail as the issuing authority reads it),
``tasks`` (the outbox drain loop of every server process), ``controllers`` (the audit pages and API).
"""
