"""The candidate's autosave and submit on PostgreSQL, answered before the session, the principal
and the route's machinery.

On exam day every candidate saves every 30 seconds: at 10,000 candidates that is over 300 saves a
second, each a few answers. Through the full stack (session and CSRF middleware, the principal's
own query, dependency injection, an ORM session, the response pipeline) a save costs about 3 ms of
CPU, of which the statement itself is a fraction. This middleware answers the ordinary save in one
statement on a pooled driver connection. The submits come as a burst at the end, and the ordinary
submit is answered here too (``submit``: lock and answers, grade, close, in one short transaction).

It is one layer of the candidate router's stack (``app.asgi``): Litestar's CSRF middleware runs
before it (a save or submit without a valid token never gets here: 403, as the route would say),
the session and principal middleware after it, for whatever it declines.

It is a fast path, never a second implementation of the rules. It answers only when everything is
as it should be: a session cookie of a live login (read by the session middleware's own backend),
a strictly valid JSON body, and a statement that found the account active (same ``auth_epoch``, an officer
who has set their own password), the attempt theirs, open, within its deadline and grace, and
every position on the paper. That statement stores either all the answers or none. Anything else,
and any error on the way (a refused connection, a timeout), is handed unchanged to the normal route
(``MyExamApi.save``, ``MyExamApi.submit``), which gives the precise answer: 401, 403, 404, 409, the field and the reason.
A save that reached the database and is handed over anyway is idempotent (same position and seq);
so is a submit (the route answers a closed attempt with the result it has).

What the normal route would add, this adds too: the session cookie renewed (sliding expiry), the
security headers (the app's ``before_send`` hook sees this response), ``Cache-Control: no-store``.
Tests run the save and submit cases through both paths and compare status, body, headers and rows.
"""

from __future__ import annotations

import json
import time
from typing import Any

import msgspec
from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend
from litestar.types import ASGIApp, HTTPResponseStartEvent, Receive, Scope, Send

from app.audit.rules import event_fields
from app.db import DriverPool
from app.exams import rules
from app.exams import services as svc
from app.exams.cache import ExamCache
from app.exams.models import Exam, ExamAttempt, ExamPartRow, ExamSession
from app.exams.rules import AttemptStatus, ClosedBy
from app.exams.schemas import SaveIn, SaveOut
from app.exams.statements import SAVE_ANSWERS_FAST as _SAVE
from app.exams.statements import (
    SQLITE_OUTBOX_INSERT,
    SQLITE_SUBMIT_ATTEMPT,
    SQLITE_SUBMIT_CLOSE,
    SUBMIT_ATTEMPT,
)
from app.exams.writer import ExamWriter, save_op, sqlite_time, time_of
from app.lib.actor import Actor
from app.lib.clock import utcnow
from app.lib.errors import possible_id
from app.lib.guards import SESSION_ACCOUNT, SESSION_EPOCH, SESSION_ISSUED
from app.lib.headers import PREFERENCE_APPLIED_MINIMAL, prefers_minimal
from app.settings import Settings

ANSWERS_SAVE = "answers_save"
"""The route opt ``fast_lane`` that names the autosave route."""
ATTEMPT_SUBMIT = "attempt_submit"
"""The route opt ``fast_lane`` that names the JSON submit route."""

_METHODS = {ANSWERS_SAVE: "PUT", ATTEMPT_SUBMIT: "POST"}

MAX_BODY = 64 * 1024
"""200 answers (the most a save may carry) take under 16 KB; a larger body goes the normal way."""

_SUBMIT_LOCK = SUBMIT_ATTEMPT.format(
    answers=""",
    ARRAY(SELECT ROW(x.position, x.choice, x.seq) FROM exam_answers x
        WHERE x.attempt_id = t.id ORDER BY x.position, x.seq) AS answers""",
    account="$1",
    epoch="$2",
    attempt="$3",
    lock="FOR UPDATE OF t",
)
"""The route's ``_LOCK_OWN_ATTEMPT`` with the account's checks: the officer's own open attempt,
locked against saves (they take a share lock) and a concurrent close, with what grading needs and
the saved answers. The answers are of this statement's snapshot, taken before the lock was
granted: a save that committed while the lock was awaited is not among them. ``_SUBMIT_CLOSE``
finds that out and closes nothing then."""

_SUBMIT_CLOSE = """
WITH closed AS (
    UPDATE exam_attempts SET status = 'closed', closed_at = $2, closed_by = $3, score = $4,
        passed = $5, result_json = $6
    WHERE id = $1 AND status = 'open'
        AND (SELECT count(*) FROM exam_answers x WHERE x.attempt_id = $1) = $15
    RETURNING id
)
INSERT INTO audit_outbox
    (occurred_at, actor_id, actor_name, action, entity_type, entity_id, agency_id, data)
SELECT $7, $8, $9, $10, $11, $12, $13, $14 FROM closed
RETURNING id
"""
"""The route's ``_CLOSE`` and its outbox event, in one statement, on condition that the answers
graded ($15 rows) are all the attempt has. This statement's snapshot is taken under the lock, when
no save can commit any more (a save needs the share lock): it sees every save ever acknowledged.
Answers are only ever added, so the same count is the same answers. A save that slipped in before
the lock was granted makes the count differ: nothing is closed, and the route grades afresh."""


_Answer = tuple[bytes, dict[str, Any], list[tuple[bytes, bytes]]]
"""The lane's answer: the JSON body, the session to renew, extra headers."""


class _Decline(Exception):
    """Not a case for the fast lane: the normal route answers."""


class ExamFastLane(ASGIMiddleware):
    """The candidate router's middleware, inside its CSRF check (Litestar's own ``CSRFMiddleware``,
    which refuses a save or submit without a valid token before it gets here) and outside its
    session and authentication middleware: answers the ordinary autosave and submit on PostgreSQL,
    declines the rest. The request is read through Litestar's ``Request`` (its cookie parser, its
    body reader: a declined request's body waits in the scope for the route) and the session cookie
    through the session backend the session middleware uses."""

    scopes = (ScopeType.HTTP,)

    def __init__(
        self,
        settings: Settings,
        backend: ClientSideSessionBackend,
        driver: DriverPool | None,
        writer: ExamWriter | None = None,
    ) -> None:
        self.settings = settings
        self.driver = driver
        self.writer = writer
        self.enabled = settings.exam_fast_lane and (driver is not None or writer is not None)
        self.backend = backend
        self.decoder = msgspec.json.Decoder(SaveIn)
        self.encoder = msgspec.json.Encoder()

    def __deepcopy__(self, memo: dict[int, Any]) -> ExamFastLane:
        # Litestar deep-copies a router's middleware when the router is registered: the copy is this
        # lane (one driver pool per process, codecs that cannot be copied).
        return self

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        lane = scope["route_handler"].opt.get("fast_lane")
        if not self.enabled or lane not in _METHODS or scope.get("method") != _METHODS[lane]:
            await next_app(scope, receive, send)
            return
        request: Request[Any, Any, Any] = Request(scope, receive)
        try:
            answer = await (self.save(request) if lane == ANSWERS_SAVE else self.submit(request))
        except Exception:  # any doubt, any failure: the normal route answers
            answer = None
        if answer is None:
            await next_app(scope, receive, send)
            return
        body, session, extra = answer
        start: HTTPResponseStartEvent = {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
            ],
        }
        # The session cookie the route's response would carry (sliding expiry).
        await self.backend.store_in_message(session, start, request)
        await send(start)
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def login(self, request: Request[Any, Any, Any]) -> tuple[dict[str, Any], int, int, int]:
        """(the session, account id, auth epoch, attempt id) of a request with a live login, as
        ``AuthMiddleware`` reads it; else declined (the CSRF token was checked before)."""
        session = await self.backend.load_from_connection(request)  # forged or stale: empty
        account_id, epoch, issued = (
            session.get(SESSION_ACCOUNT),
            session.get(SESSION_EPOCH, 0),
            session.get(SESSION_ISSUED),
        )
        if not (
            type(account_id) is int
            and type(epoch) is int
            and type(issued) is int
            and -60 <= time.time() - issued < self.settings.session_absolute_seconds
        ):
            raise _Decline
        attempt_id = request.path_params.get("attempt_id")
        if type(attempt_id) is not int or not possible_id(attempt_id):
            raise _Decline
        return session, account_id, epoch, attempt_id

    async def save(self, request: Request[Any, Any, Any]) -> _Answer:
        if request.content_type[0] != "application/json":
            raise _Decline
        length = request.content_length
        if length is not None and length > MAX_BODY:
            raise _Decline
        session, account_id, epoch, attempt_id = await self.login(request)
        body = await request.body()  # kept in the scope: a declined save's route reads it there
        if len(body) > MAX_BODY:
            raise _Decline
        data = self.decoder.decode(body)  # strict; any error: the route says which field and why
        if not all(rules.valid_choice(a.choice) for a in data.answers):
            raise _Decline
        now = utcnow()
        positions = [a.position for a in data.answers]
        if self.writer is not None:
            deadline = await self.writer.run(
                save_op(
                    account_id=account_id,
                    epoch=epoch,
                    attempt_id=attempt_id,
                    now=now,
                    limit=now - rules.GRACE,
                    answers=[(a.position, a.seq, rules.choice_text(a.choice)) for a in data.answers],
                    event=lambda agency, username, stored: _outbox_row(
                        event_fields(
                            Actor(account_id, username),
                            "exam.answers.save",
                            "exam_attempt",
                            attempt_id,
                            agency,
                            {"answers": stored},
                            now,
                        )
                    ),
                ),
                light=True,
            )
            if deadline is None:  # not saved, or a clash that stored nothing: the route says why
                raise _Decline
        else:
            assert self.driver is not None
            row = await self.driver.fetchrow(
                _SAVE,
                account_id,
                epoch,
                attempt_id,
                now,
                now - rules.GRACE,
                positions,
                [a.seq for a in data.answers],
                [rules.choice_text(a.choice) for a in data.answers],
                max(positions),
            )
            if row is None or row[1]:  # not saved, or a clash that stored nothing: the route says why
                raise _Decline
            deadline = row[0]
        out = SaveOut(
            saved=sorted(set(positions)),
            server_now=now,
            deadline_at=deadline,
            seconds_left=rules.seconds_left(deadline, now),
        )
        return self.encoder.encode(out), session, []

    async def submit(self, request: Request[Any, Any, Any]) -> _Answer:
        """The route's ``attempt_submit`` of an open attempt whose result needs nothing more from
        the database: a fail (a pass may complete the qualification, which the route grants) in
        a session that does not show the answers right away (the review reads the banks). Any
        other case, a question version this process has not cached yet included, is declined
        before anything is written: the transaction rolls back and the route answers."""
        session, account_id, epoch, attempt_id = await self.login(request)
        minimal = prefers_minimal(request.headers.getall("prefer", []))
        now = utcnow()
        cache = request.app.state.exam_cache
        if self.writer is not None:
            view = await self.writer.run(
                lambda conn: _sqlite_submit(conn, account_id, epoch, attempt_id, now, minimal, cache)
            )
            if view is None:
                raise _Decline
        else:
            assert self.driver is not None
            async with self.driver.transaction() as conn:
                row = await conn.fetchrow(_SUBMIT_LOCK, account_id, epoch, attempt_id)
                if row is None:  # not theirs, not open, no live login: the route says which
                    raise _Decline
                saved = row["answers"]
                closing = _closing(row, saved, account_id, attempt_id, now, minimal, cache)
                if closing is None:
                    raise _Decline
                view, attempt, event = closing
                closed = await conn.fetchrow(
                    _SUBMIT_CLOSE,
                    attempt_id,
                    now,
                    attempt.closed_by,
                    attempt.score,
                    attempt.passed,
                    attempt.result_json,
                    *event.values(),
                    len(saved),
                )
                if closed is None:
                    raise _Decline
        extra = []
        if minimal:
            name, value = PREFERENCE_APPLIED_MINIMAL
            extra.append((name.lower().encode(), value.encode()))
        return self.encoder.encode(view), session, extra


def _closing(
    row: Any, saved: Any, account_id: int, attempt_id: int, now: Any, minimal: bool, cache: ExamCache
) -> tuple[Any, ExamAttempt, dict[str, Any]] | None:
    """The graded close of the attempt ``row`` (the columns of ``_SUBMIT_LOCK``) with its ``saved``
    answers ((position, choice, seq) ordered by position and seq): (the view answered, the closed
    attempt, the outbox event), or None when the lane cannot answer it (the route does)."""
    paper = svc.paper_of(row["paper_json"])
    content = svc.cached_questions([p.question_id for p in paper], cache)
    if content is None:
        return None
    answers = svc.latest_of(saved)
    by = ClosedBy.TIMEOUT if rules.is_overdue(row["deadline_at"], now) else ClosedBy.CANDIDATE
    g, result = svc.grade_attempt(
        paper, content, answers, scoring=row["multiple_scoring"], pass_mark=row["pass_mark"]
    )
    attempt = ExamAttempt(
        id=attempt_id,
        number=row["number"],
        status=AttemptStatus.CLOSED.value,
        started_at=row["started_at"],
        deadline_at=row["deadline_at"],
        question_count=row["question_count"],
        closed_at=now,
        closed_by=by.value,
        score=g.score,
        passed=g.passed,
        result_json=json.dumps(result),
    )
    s = ExamSession(
        id=row["session_id"],
        title=row["session_title"],
        submit_on_leave=row["submit_on_leave"],
        review_policy=row["review_policy"],
        opens_at=row["opens_at"],
        closes_at=row["closes_at"],
    )
    exam = Exam(title=row["exam_title"], pass_mark=row["pass_mark"])
    sheet = svc.Sheet(attempt, s, exam, ExamPartRow(part=row["part"]), paper, content, answers)
    view = svc.closed_view_without_review(sheet, now, with_paper=not minimal)
    if view is None:
        return None
    event = event_fields(
        Actor(account_id, row["username"]),
        "exam.attempt.close",
        "exam_attempt",
        attempt_id,
        row["agency_id"],
        svc.close_event_data(by, g, result),
        now,
    )
    return view, attempt, event


def _outbox_row(event: dict[str, Any]) -> tuple[Any, ...]:
    """An outbox event's values for the SQLite writer (its time as the column holds it)."""
    return (sqlite_time(event["occurred_at"]), *list(event.values())[1:])


_SQLITE_TIMES = ("started_at", "deadline_at", "opens_at", "closes_at")


def _sqlite_submit(
    conn: Any, account_id: int, epoch: int, attempt_id: int, now: Any, minimal: bool, cache: ExamCache
) -> Any:
    """The lane's submit as an item of the SQLite writer's batch (which holds the write lock: no
    save can come between the answers read and the close)."""
    cursor = conn.execute(SQLITE_SUBMIT_ATTEMPT, (account_id, epoch, attempt_id))
    found = cursor.fetchone()
    if found is None:
        return None
    row = dict(zip([c[0] for c in cursor.description], found, strict=True))
    for name in _SQLITE_TIMES:
        row[name] = time_of(row[name])
    row["submit_on_leave"] = bool(row["submit_on_leave"])
    saved = sorted(json.loads(row.pop("answers")), key=lambda a: (a[0], a[2]))  # by position, seq
    closing = _closing(row, saved, account_id, attempt_id, now, minimal, cache)
    if closing is None:
        return None
    view, attempt, event = closing
    closed = conn.execute(
        SQLITE_SUBMIT_CLOSE,
        (sqlite_time(now), attempt.closed_by, attempt.score, attempt.passed, attempt.result_json, attempt_id),
    )
    if closed.rowcount != 1:
        return None
    conn.execute(SQLITE_OUTBOX_INSERT, _outbox_row(event))
    return view
