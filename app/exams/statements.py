"""Prebuilt SQL of the exam-day hot paths: the autosave, written once for both of its callers, the
SQLite writer's statements (``app.exams.writer``), the same checks and writes in SQLite's terms,
and the read of the result page after a submit (``RESULT_ATTEMPT``).

The autosave appends the answers that the attempt accepts and, in the same statement, the audit
outbox event of what was stored (the same text ``canonical_json`` gives). Two callers run it:
the route (``services.answers.answers_save``, through the ORM session, named parameters) and the
fast lane (``fastlane.ExamFastLane``, on a driver connection, positional parameters). They differ
only in how they find the attempt (the row ``a``); what is written is this module's ``_WRITE``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import TextClause, text

_WRITE = """
v AS (
    SELECT * FROM unnest(CAST(:positions AS integer[]), CAST(:seqs AS bigint[]), CAST(:choices AS text[]))
        AS v(position, seq, choice)
), clash AS (
    SELECT v.position FROM a CROSS JOIN v
    JOIN exam_answers e ON e.attempt_id = a.id AND e.position = v.position AND e.seq = v.seq
    WHERE e.choice <> v.choice
    LIMIT 1
), ins AS (
    INSERT INTO exam_answers (attempt_id, position, seq, choice, saved_at)
    SELECT a.id, v.position, v.seq, v.choice, :now
    FROM a, v
    WHERE a.status = 'open' AND a.deadline_at >= :limit AND v.position < a.question_count
        AND NOT EXISTS (SELECT 1 FROM clash)
    ON CONFLICT (attempt_id, position, seq) DO NOTHING
    RETURNING position, seq, choice
), logged AS (
    INSERT INTO audit_outbox
        (occurred_at, actor_id, actor_name, action, entity_type, entity_id, agency_id, data)
    SELECT :now, a.actor_id, a.actor_name, 'exam.answers.save', 'exam_attempt', CAST(a.id AS text),
        a.agency_id,
        (SELECT '{"answers":[' || string_agg(
            '[' || position || ',' || seq || ',' || to_json(choice)::text || ']', ','
            ORDER BY position, seq) || ']}' FROM ins)
    FROM a WHERE EXISTS (SELECT 1 FROM ins)
)"""
"""The answers the attempt ``a`` accepts (open, within its deadline and grace, at a position of
the paper; a repeat of a stored save is a no-op) and the outbox event of what was stored. A save
that repeats a stored (position, seq) with another answer (``clash``) stores nothing at all: the
browser's sequence number names one answer, and a second, different one is refused (409), not
reported as saved."""


def _positional(sql: str, names: Sequence[str]) -> str:
    """``sql`` with its ``:name`` parameters numbered ``$1``, ``$2``… in the order of ``names``."""
    for number, name in enumerate(names, start=1):
        sql = re.sub(rf"(?<![:\w]):{name}\b", f"${number}", sql)
    assert not re.search(r"(?<![:\w]):[a-z_]+\b", sql), "a parameter without a position"
    return sql


SAVE_ANSWERS: TextClause = text(
    """
WITH a AS (
    SELECT id, agency_id, status, deadline_at, question_count,
        CAST(:actor_id AS bigint) AS actor_id, CAST(:actor_name AS text) AS actor_name
    FROM exam_attempts WHERE id = :attempt_id AND officer_id = :officer_id
    FOR SHARE
), """
    + _WRITE
    + """
SELECT a.status, a.deadline_at, a.question_count, ARRAY(SELECT position FROM ins) AS saved,
    (SELECT position FROM clash) AS clash FROM a
"""
)
"""The route's autosave on PostgreSQL: one statement. It locks the attempt in share mode (a
closing transaction holds it exclusively: a save either commits before the grading reads the
answers, or sees the attempt closed and stores nothing), appends what the attempt accepts, and
returns the attempt's state (a row whatever was stored, none when the attempt is not theirs)."""


SAVE_ANSWERS_FAST = _positional(
    """
WITH who AS (
    SELECT ac.id, ac.username, ac.officer_id
    FROM accounts ac JOIN agencies ag ON ag.id = ac.agency_id
    WHERE ac.id = :account_id AND ac.is_active AND ac.auth_epoch = :epoch AND ac.role = 'officer'
        AND NOT ac.must_change_password
), a AS (
    SELECT t.id, t.agency_id, t.status, t.deadline_at, t.question_count,
        who.id AS actor_id, who.username AS actor_name
    FROM exam_attempts t JOIN who ON who.officer_id = t.officer_id
    WHERE t.id = :attempt_id AND t.status = 'open' AND t.deadline_at >= :limit
        AND :max_position < t.question_count
    FOR SHARE OF t
), """
    + _WRITE
    + """
SELECT a.deadline_at, EXISTS (SELECT 1 FROM clash) AS clash FROM a
""",
    ("account_id", "epoch", "attempt_id", "now", "limit", "positions", "seqs", "choices", "max_position"),
)
"""The fast lane's autosave (asyncpg, ``$1``…``$9``: account id, auth epoch, attempt id, now, the
deadline limit, positions, seqs, choices, the highest position): the whole save when all is
well, else nothing. The account (live, an officer, same epoch) and the attempt (theirs, open, in
time, every position on the paper) are conditions of the one row ``a``; without it nothing is
inserted, and the row returned is the attempt's deadline (and whether the save clashed with a stored
one, which the lane leaves to the route's 409)."""


SQLITE_SAVE_ATTEMPT = """
SELECT t.agency_id, t.deadline_at, ac.username, EXISTS (
    SELECT 1 FROM json_each(?) AS v
    JOIN exam_answers e ON e.attempt_id = t.id AND e.position = v.value ->> 0 AND e.seq = v.value ->> 1
    WHERE e.choice <> v.value ->> 2
) AS clash
FROM accounts ac
JOIN agencies ag ON ag.id = ac.agency_id
JOIN exam_attempts t ON t.officer_id = ac.officer_id
WHERE ac.id = ? AND ac.is_active AND ac.auth_epoch = ? AND ac.role = 'officer'
    AND NOT ac.must_change_password AND t.id = ? AND t.status = 'open' AND t.deadline_at >= ?
    AND ? < t.question_count
"""
"""The SQLite writer's autosave (``app.exams.writer.save_op``), first step: the row ``a`` of
``SAVE_ANSWERS_FAST`` (the answers as a JSON list of [position, seq, choice], account id, auth
epoch, attempt id, the deadline limit, the highest position): the attempt's agency and deadline,
the account's name and ``_WRITE``'s ``clash`` (a stored (position, seq) with another answer), or
no row (declined). The writer holds the write lock for the whole batch, so no lock of the row is
needed."""

SQLITE_SAVE_INSERT = """
INSERT INTO exam_answers (attempt_id, position, seq, choice, saved_at)
SELECT ?, v.value ->> 0, v.value ->> 1, v.value ->> 2, ? FROM json_each(?) AS v WHERE true
ON CONFLICT (attempt_id, position, seq) DO NOTHING
RETURNING position, seq, choice
"""
"""``_WRITE``'s ``ins`` (attempt id, now, the answers as in ``SQLITE_SAVE_ATTEMPT``): the answers
stored, none for a repeat of a stored save. One statement for all of them: each statement the
writer's thread runs gives up the GIL, and gets it back only when the busy event loop lets go
(bench/README.md, stop 33)."""

SQLITE_OUTBOX_INSERT = """
INSERT INTO audit_outbox (occurred_at, actor_id, actor_name, action, entity_type, entity_id, agency_id, data)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
"""An outbox event (``app.audit.rules.event_fields``' columns, in their order)."""

SUBMIT_ATTEMPT = """
SELECT t.session_id, t.agency_id, t.number, t.paper_json, t.question_count, t.started_at,
    t.deadline_at, e.title AS exam_title, e.pass_mark, e.multiple_scoring,
    s.title AS session_title, s.submit_on_leave, s.review_policy, s.opens_at, s.closes_at,
    p.part, ac.username{answers}
FROM accounts ac
JOIN agencies ag ON ag.id = ac.agency_id
JOIN exam_attempts t ON t.officer_id = ac.officer_id
JOIN exam_sessions s ON s.id = t.session_id
JOIN exams e ON e.id = s.exam_id
JOIN exam_parts p ON p.id = t.part_id
WHERE ac.id = {account} AND ac.is_active AND ac.auth_epoch = {epoch} AND ac.role = 'officer'
    AND NOT ac.must_change_password AND t.id = {attempt} AND t.status = 'open'
{lock}"""
"""A submit's attempt with the account's checks (the officer's own open attempt, by account,
session epoch and attempt id) and what grading needs; formatted once per dialect: the fast lane's
``_SUBMIT_LOCK`` (PostgreSQL) and ``SQLITE_SUBMIT_ATTEMPT``."""

SQLITE_SUBMIT_ATTEMPT = SUBMIT_ATTEMPT.format(
    answers=""",
    (SELECT json_group_array(json_array(x.position, x.choice, x.seq)) FROM exam_answers x
        WHERE x.attempt_id = t.id) AS answers""",
    account="?",
    epoch="?",
    attempt="?",
    lock="",
)
"""``_SUBMIT_LOCK`` of the fast lane without its lock (the writer's batch holds the write lock),
the saved answers in one JSON list of [position, choice, seq], in no order: one row, where a row
per answer is a step per answer, each giving up the GIL (``SQLITE_SAVE_INSERT``)."""

SQLITE_SUBMIT_CLOSE = """
UPDATE exam_attempts SET status = 'closed', closed_at = ?, closed_by = ?, score = ?, passed = ?,
    result_json = ?
WHERE id = ? AND status = 'open'
"""
"""The route's ``_CLOSE``; its outbox event is ``SQLITE_OUTBOX_INSERT``."""


RESULT_ATTEMPT = """
SELECT t.officer_id, t.session_id, t.number, t.question_count, t.started_at, t.deadline_at,
    t.closed_at, t.closed_by, t.score, t.passed, t.result_json, e.title, e.pass_mark,
    s.title, s.submit_on_leave, s.review_policy, s.opens_at, s.closes_at, p.part
FROM exam_attempts t
JOIN exam_sessions s ON s.id = t.session_id
JOIN exams e ON e.id = s.exam_id
JOIN exam_parts p ON p.id = t.part_id
WHERE t.id = {p} AND t.status = 'closed'
"""
"""A closed attempt with what its result page shows (``views.closed_result_on_driver``). ``{p}``
is a format field, filled with each driver's parameter marker below (``?``, ``$1``). The caller
checks the row's officer against the principal."""
SQLITE_RESULT_ATTEMPT = RESULT_ATTEMPT.format(p="?")
POSTGRES_RESULT_ATTEMPT = RESULT_ATTEMPT.format(p="$1")


SQLITE_START_COLUMNS = (
    "session_id",
    "part_id",
    "officer_id",
    "agency_id",
    "field",
    "number",
    "seed",
    "paper_json",
    "question_count",
    "status",
    "started_at",
    "deadline_at",
    "closed_at",
    "closed_by",
    "score",
    "passed",
    "result_json",
    "leave_count",
)
SQLITE_START_INSERT = (
    f"INSERT INTO exam_attempts ({', '.join(SQLITE_START_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(SQLITE_START_COLUMNS))}) RETURNING id"
)
"""The SQLite writer's start: the new attempt (the route's ``_INSERT_ATTEMPT``), its id returned.
The open-attempt and attempt-number unique indexes refuse a second start of the same part."""


__all__ = [
    "POSTGRES_RESULT_ATTEMPT",
    "RESULT_ATTEMPT",
    "SAVE_ANSWERS",
    "SAVE_ANSWERS_FAST",
    "SQLITE_OUTBOX_INSERT",
    "SQLITE_RESULT_ATTEMPT",
    "SQLITE_SAVE_ATTEMPT",
    "SQLITE_SAVE_INSERT",
    "SQLITE_START_COLUMNS",
    "SQLITE_START_INSERT",
    "SQLITE_SUBMIT_ATTEMPT",
    "SQLITE_SUBMIT_CLOSE",
    "SUBMIT_ATTEMPT",
]
