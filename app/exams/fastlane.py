"""The candidate's autosave on PostgreSQL, answered before the framework's per-request machinery.

On exam day every candidate saves every 30 seconds: at 10,000 candidates that is over 300 saves a
second, each a few answers. Through the full stack (session and CSRF middleware, the principal's
own query, dependency injection, an ORM session, the response pipeline) a save costs about 3 ms of
CPU, of which the statement itself is a fraction. This middleware answers the ordinary save in one
statement on a pooled driver connection.

It is a fast path, never a second implementation of the rules. It answers only when everything is
as it should be: a well-formed session cookie of a live login, a matching CSRF token, a strictly
valid JSON body, and a statement that found the account active (same ``auth_epoch``, an officer
who has set their own password), the attempt theirs, open, within its deadline and grace, and
every position on the paper. That statement stores either all the answers or none. Anything else,
and any error on the way (a refused connection, a timeout), is handed unchanged to the normal route
(``MyExamApi.save``), which gives the precise answer: 401, 403, 404, 409, the field and the reason.
A save that reached the database and is handed over anyway is idempotent (same position and seq).

What the normal route would add, this adds too: the session cookie renewed (sliding expiry), the
security headers (the app's ``before_send`` hook sees this response), ``Cache-Control: no-store``.
Tests run every save case through both paths and compare status, body, headers and the rows.
"""

from __future__ import annotations

import hmac
import time

import msgspec
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.middleware.csrf import CSRF_SECRET_LENGTH, generate_csrf_hash
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.types import ASGIApp, Receive, ReceiveMessage, Scope, Send

from app.db import DriverPool, utcnow
from app.exams import rules
from app.exams.schemas import SaveIn, SaveOut
from app.lib.guards import SESSION_ACCOUNT, SESSION_EPOCH, SESSION_ISSUED
from app.settings import Settings

ANSWERS_SAVE = "answers_save"
"""The route opt ``fast_lane`` that names the autosave route."""

MAX_BODY = 64 * 1024
"""200 answers (the most a save may carry) take under 16 KB; a larger body goes the normal way."""

_ID_MAX = 2**63 - 1

_SAVE = """
WITH who AS (
    SELECT ac.id, ac.username, ac.officer_id
    FROM accounts ac JOIN agencies ag ON ag.id = ac.agency_id
    WHERE ac.id = $1 AND ac.is_active AND ac.auth_epoch = $2 AND ac.role = 'officer'
        AND NOT ac.must_change_password
), a AS (
    SELECT t.id, t.agency_id, t.deadline_at, who.id AS actor_id, who.username AS actor_name
    FROM exam_attempts t JOIN who ON who.officer_id = t.officer_id
    WHERE t.id = $3 AND t.status = 'open' AND t.deadline_at >= $5 AND $9 < t.question_count
    FOR SHARE OF t
), ins AS (
    INSERT INTO exam_answers (attempt_id, position, seq, choice, saved_at)
    SELECT a.id, v.position, v.seq, v.choice, $4
    FROM a, unnest($6::integer[], $7::bigint[], $8::text[]) AS v(position, seq, choice)
    ON CONFLICT (attempt_id, position, seq) DO NOTHING
    RETURNING position, seq, choice
), logged AS (
    INSERT INTO audit_outbox
        (occurred_at, actor_id, actor_name, action, entity_type, entity_id, agency_id, data)
    SELECT $4, a.actor_id, a.actor_name, 'exam.answers.save', 'exam_attempt', CAST(a.id AS text),
        a.agency_id,
        (SELECT '{"answers":[' || string_agg(
            '[' || position || ',' || seq || ',' || to_json(choice)::text || ']', ','
            ORDER BY position, seq) || ']}' FROM ins)
    FROM a WHERE EXISTS (SELECT 1 FROM ins)
)
SELECT a.deadline_at FROM a
"""
"""The whole save when all is well, else nothing: the account (live, an officer, same epoch) and
the attempt (theirs, open, in time, every position on the paper) are conditions of the one row
``a``; without it nothing is inserted. The answers and the audit outbox event are written as
``services._SAVE_PG`` writes them, under the same share lock on the attempt (a close holds it
exclusively: a save either commits before the grading reads the answers or finds it closed)."""


class _Decline(Exception):
    """Not a case for the fast lane: the normal route answers."""


class ExamFastLane(ASGIMiddleware):
    """Outermost app middleware: answers the ordinary autosave on PostgreSQL, declines the rest."""

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
        if (
            not self.enabled
            or handler is None
            or handler.opt.get("fast_lane") != ANSWERS_SAVE
            or scope.get("method") != "PUT"
        ):
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
                    answer = await self._save(scope, b"".join(_body(m) for m in read))
                except Exception:  # any doubt, any failure: the normal route answers
                    answer = None
                if answer is not None:
                    await _respond(send, *answer)
                    return
                break
        await next_app(scope, _replay(read, receive), send)

    async def _save(self, scope: Scope, body: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
        headers = _headers(scope)
        cookies = _cookies(headers.get(b"cookie", []))
        # The CSRF double submit, as Litestar's middleware checks it: header and cookie tokens both
        # carry a valid HMAC and name the same secret.
        token = _one(headers.get(b"x-csrftoken", []))
        csrf_cookie = cookies.get(self.csrf_key)
        if csrf_cookie is None or not self._csrf_ok(token.decode("latin-1"), csrf_cookie.decode("latin-1")):
            raise _Decline
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
        cookie = self.backend._create_session_cookies(self.backend.dump_data(session))[0]
        return self.encoder.encode(out), [(b"set-cookie", cookie.to_header(header="").encode("latin-1"))]

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
