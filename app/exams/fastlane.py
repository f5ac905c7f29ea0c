"""The candidate's autosave and submit on PostgreSQL, answered before the framework's per-request
machinery.

On exam day every candidate saves every 30 seconds: at 10,000 candidates that is over 300 saves a
second, each a few answers. Through the full stack (session and CSRF middleware, the principal's
own query, dependency injection, an ORM session, the response pipeline) a save costs about 3 ms of
CPU, of which the statement itself is a fraction. This middleware answers the ordinary save in one
statement on a pooled driver connection. The submits come as a burst at the end, and the ordinary
submit is answered here too (``_submit``: lock and answers, grade, close, in one short transaction).

It is a fast path, never a second implementation of the rules. It answers only when everything is
as it should be: a well-formed session cookie of a live login, a matching CSRF token, a strictly
valid JSON body, and a statement that found the account active (same ``auth_epoch``, an officer
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

import hmac
import json
import time
from typing import Any

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from app.audit.rules import event_fields
from app.db import DriverPool
from app.exams import rules
from app.exams import services as svc
from app.exams.models import Exam, ExamAttempt, ExamPartRow, ExamSession
from app.exams.rules import AttemptStatus, ClosedBy
from app.exams.schemas import SaveIn, SaveOut
from app.exams.statements import SAVE_ANSWERS_FAST as _SAVE
from app.lib.actor import Actor
from app.lib.clock import utcnow
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

_ID_MAX = 2**63 - 1

_SUBMIT_LOCK = """
SELECT t.session_id, t.agency_id, t.number, t.paper_json, t.question_count, t.started_at,
    t.deadline_at, e.title AS exam_title, e.pass_mark, e.multiple_scoring,
    s.title AS session_title, s.submit_on_leave, s.review_policy, s.opens_at, s.closes_at,
    p.part, ac.username,
    ARRAY(SELECT ROW(x.position, x.choice, x.seq) FROM exam_answers x
        WHERE x.attempt_id = t.id ORDER BY x.position, x.seq) AS answers
FROM accounts ac
JOIN agencies ag ON ag.id = ac.agency_id
JOIN exam_attempts t ON t.officer_id = ac.officer_id
JOIN exam_sessions s ON s.id = t.session_id
JOIN exams e ON e.id = s.exam_id
JOIN exam_parts p ON p.id = t.part_id
WHERE ac.id = $1 AND ac.is_active AND ac.auth_epoch = $2 AND ac.role = 'officer'
    AND NOT ac.must_change_password AND t.id = $3 AND t.status = 'open'
FOR UPDATE OF t
"""
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


class _Decline(Exception):
    """Not a case for the fast lane: the normal route answers."""


class ExamFastLane(ASGIMiddleware):
    """Outermost app middleware: answers the ordinary autosave and submit on PostgreSQL, declines
    the rest."""

    scopes = (ScopeType.HTTP,)

    def __init__(
        self, settings: Settings, session_config: CookieBackendConfig, driver: DriverPool | None
    ) -> None:
        self.settings = settings
        self.driver = driver
        self.enabled = settings.exam_fast_lane and driver is not None
        self.backend = ClientSideSessionBackend(config=session_config)
        self.session_key = session_config.key.encode()
        self.csrf_key = settings.cookie_name("zf_csrf").encode()
        self.csrf_secret = settings.csrf_secret
        self.decoder = msgspec.json.Decoder(SaveIn)
        self.encoder = msgspec.json.Encoder()

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        handler = scope.get("route_handler")
        lane = None if handler is None else handler.opt.get("fast_lane")
        if not self.enabled or lane not in _METHODS or scope.get("method") != _METHODS[lane]:
            await next_app(scope, receive, send)
            return
        read: list[ReceiveMessage] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":  # the client went away: the route sees it
                break
            size += len(_body(message))
            if size > MAX_BODY:
                break
            if not message.get("more_body", False):
                try:
                    body = b"".join(_body(m) for m in read)
                    answer = await (self._save(scope, body) if lane == ANSWERS_SAVE else self._submit(scope))
                except Exception:  # any doubt, any failure: the normal route answers
                    answer = None
                if answer is not None:
                    await _respond(send, *answer)
                    return
                break
        await next_app(scope, _replay(read, receive), send)

    def _login(self, scope: Scope, *, json_body: bool) -> tuple[dict[str, Any], int, int, int]:
        """(the session, account id, auth epoch, attempt id) of a request with a live login and a
        valid CSRF token, as Litestar's middleware and ``AuthMiddleware`` check them; else declined."""
        headers = _headers(scope)
        cookies = _cookies(headers.get(b"cookie", []))
        # The CSRF double submit, as Litestar's middleware checks it: header and cookie tokens both
        # carry a valid HMAC and name the same secret.
        token = _one(headers.get(b"x-csrftoken", []))
        csrf_cookie = cookies.get(self.csrf_key)
        if csrf_cookie is None or not self._csrf_ok(token.decode("latin-1"), csrf_cookie.decode("latin-1")):
            raise _Decline
        if json_body:
            content_type = _one(headers.get(b"content-type", [])).split(b";", 1)[0].strip().lower()
            if content_type != b"application/json":
                raise _Decline
        # The session: one cookie (a chunked one goes the normal way), a live login.
        if any(k != self.session_key and k.startswith(self.session_key + b"-") for k in cookies):
            raise _Decline
        raw = cookies.get(self.session_key)
        if raw is None:
            raise _Decline
        session = self.backend.load_data([raw])  # a forged or stale cookie raises: declined
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
        attempt_id = scope["path_params"].get("attempt_id")
        if type(attempt_id) is not int or not 0 < attempt_id <= _ID_MAX:
            raise _Decline
        return session, account_id, epoch, attempt_id

    def _renewed(self, session: dict[str, Any]) -> list[tuple[bytes, bytes]]:
        """The session cookie the route's response would carry (sliding expiry)."""
        cookie = self.backend._create_session_cookies(self.backend.dump_data(session))[0]
        return [(b"set-cookie", cookie.to_header(header="").encode("latin-1"))]

    async def _save(self, scope: Scope, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        session, account_id, epoch, attempt_id = self._login(scope, json_body=True)
        data = self.decoder.decode(body)  # strict; any error: the route says which field and why
        if not all(rules.valid_choice(a.choice) for a in data.answers):
            raise _Decline
        now = utcnow()
        positions = [a.position for a in data.answers]
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
        if row is None:
            raise _Decline
        deadline = row[0]
        out = SaveOut(
            saved=sorted(set(positions)),
            server_now=now,
            deadline_at=deadline,
            seconds_left=rules.seconds_left(deadline, now),
        )
        return self.encoder.encode(out), self._renewed(session)

    async def _submit(self, scope: Scope) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        """The route's ``attempt_submit`` of an open attempt whose result needs nothing more from
        the database: a fail (a pass may complete the qualification, which the route grants) in
        a session that does not show the answers right away (the review reads the banks). Any
        other case, a question version this process has not cached yet included, is declined
        before anything is written: the transaction rolls back and the route answers."""
        session, account_id, epoch, attempt_id = self._login(scope, json_body=False)
        minimal = prefers_minimal(
            value.decode("latin-1") for name, value in scope["headers"] if name.lower() == b"prefer"
        )
        now = utcnow()
        assert self.driver is not None
        async with self.driver.transaction() as conn:
            row = await conn.fetchrow(_SUBMIT_LOCK, account_id, epoch, attempt_id)
            if row is None:  # not theirs, not open, no live login: the route says which
                raise _Decline
            paper = svc.paper_of(row["paper_json"])
            content = svc.cached_questions(
                [p.question_id for p in paper], scope["litestar_app"].state.exam_cache
            )
            if content is None:
                raise _Decline
            saved = row["answers"]
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
            view = svc.closed_view_without_review(
                attempt,
                s,
                exam,
                ExamPartRow(part=row["part"]),
                paper,
                content,
                answers,
                now,
                with_paper=not minimal,
            )
            if view is None:
                raise _Decline
            event = event_fields(
                Actor(account_id, row["username"]),
                "exam.attempt.close",
                "exam_attempt",
                attempt_id,
                row["agency_id"],
                svc.close_event_data(by, g, result),
                now,
            )
            closed = await conn.fetchrow(
                _SUBMIT_CLOSE,
                attempt_id,
                now,
                by.value,
                g.score,
                g.passed,
                attempt.result_json,
                *event.values(),
                len(saved),
            )
            if closed is None:
                raise _Decline
        extra = self._renewed(session)
        if minimal:
            name, value = PREFERENCE_APPLIED_MINIMAL
            extra.append((name.lower().encode(), value.encode()))
        return self.encoder.encode(view), extra

    def _csrf_ok(self, header_token: str, cookie_token: str) -> bool:
        a, b = self._csrf_secret_of(header_token), self._csrf_secret_of(cookie_token)
        return a is not None and b is not None and hmac.compare_digest(a.encode(), b.encode())

    def _csrf_secret_of(self, token: str) -> str | None:
        if len(token) < CSRF_SECRET_LENGTH + 1:
            return None
        secret, mac = token[:CSRF_SECRET_LENGTH], token[CSRF_SECRET_LENGTH:]
        expected = generate_csrf_hash(token=secret, secret=self.csrf_secret)
        return secret if hmac.compare_digest(mac.encode(), expected.encode()) else None


def _headers(scope: Scope) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = {}
    for name, value in scope["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def _one(values: list[bytes]) -> bytes:
    if len(values) != 1:
        raise _Decline
    return values[0]


def _cookies(headers: list[bytes]) -> dict[bytes, bytes]:
    """name → value; a name given twice, or a value with escapes, is not for the fast lane."""
    out: dict[bytes, bytes] = {}
    for header in headers:
        for part in header.split(b";"):
            name, sep, value = part.strip().partition(b"=")
            if not sep:
                continue
            if len(value) >= 2 and value[0] == value[-1] == 0x22:  # quoted, as browsers keep base64
                value = value[1:-1]
            if name in out or b'"' in value or b"\\" in value:
                raise _Decline
            out[name] = value
    return out


def _body(message: ReceiveMessage) -> bytes:
    body = message.get("body", b"")
    return body if isinstance(body, bytes) else b""


def _replay(read: list[ReceiveMessage], receive: Receive) -> Receive:
    """A receive that gives back the messages the fast lane read, then the client's own."""
    pending = list(read)

    async def replay() -> ReceiveMessage:
        return pending.pop(0) if pending else await receive()

    return replay


async def _respond(send: Send, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})
