"""The benches' HTTP helpers, one home: a lean keep-alive HTTP/1.1 connection (the browser-shaped
client of ``bench/exam_day.py`` and the JSON client of ``bench/exam_request_cost.py`` are built on
it), the session cookie a login sets, the CSRF cookie, the wait for a server to answer /health.

httpx spends more CPU per request than the server does: on a shared 2-core machine the load
generator would measure itself. This client writes the request and reads Content-Length bytes back.
Nothing here imports the application at import time (the benches' --help stays quick).
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any


class KeepAlive:
    """One keep-alive HTTP/1.1 connection to the server on 127.0.0.1 (from ``address``, a loopback
    address of its own, when given), opened on first use and again after the server closed it."""

    def __init__(self, port: int, address: str | None = None) -> None:
        self.port = port
        self.address = address
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, raw: bytes) -> tuple[int, dict[str, str], list[str], bytes]:
        """Send one whole request; (status, headers by lower-case name, Set-Cookie values, body).
        One retry on a connection closed under it."""
        for attempt in (1, 2):
            try:
                if self.writer is None:
                    local = (self.address, 0) if self.address else None
                    self.reader, self.writer = await asyncio.open_connection(
                        "127.0.0.1", self.port, local_addr=local
                    )
                assert self.reader is not None
                self.writer.write(raw)
                await self.writer.drain()
                status_line = await self.reader.readline()
                if not status_line:
                    raise ConnectionError("closed")
                status = int(status_line.split()[1])
                headers: dict[str, str] = {}
                cookies: list[str] = []
                while (line := await self.reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    name, value = name.lower(), value.strip()
                    if name == "set-cookie":
                        cookies.append(value)
                    else:
                        headers[name] = value
                length = int(headers.get("content-length", "0"))
                data = await self.reader.readexactly(length) if length else b""
                if headers.get("connection") == "close":
                    self.close()
                return status, headers, cookies, data
            except (ConnectionError, OSError, asyncio.IncompleteReadError, ValueError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Conn(KeepAlive):
    """A JSON API client on one keep-alive connection, the same headers on every request (the
    session and CSRF cookies, the CSRF header), as a candidate's page holds one connection."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        super().__init__(port)
        self.base = "".join(f"{k}: {v}\r\n" for k, v in {"host": "127.0.0.1", **headers}.items())

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        decode: bool = True,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        """(status, the JSON body); ``decode=False``: the raw body (for answers the candidate does not
        read: decoding a 46 KB submit answer costs the shared machine's CPU, not the server's).
        ``headers``: more headers for this request."""
        payload = b"" if body is None else json.dumps(body).encode()
        more = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = f"{method} {path} HTTP/1.1\r\n{self.base}{more}content-length: {len(payload)}\r\n"
        if body is not None:
            head += "content-type: application/json\r\n"
        status, _headers, _cookies, data = await self.exchange(head.encode() + b"\r\n" + payload)
        return status, ((json.loads(data) if decode else data) if data else None)


def session_cookie(secret: str, account_id: int) -> str:
    """What a login sets: the encrypted client-side session naming the account (epoch 1)."""
    from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig

    from app.lib.guards import SESSION_ACCOUNT, SESSION_EPOCH, SESSION_ISSUED, SESSION_RENEWED
    from app.settings import load_settings

    settings = load_settings({"APP_ENV": "development", "SECRET_KEY": secret, "DATABASE_URL": "sqlite://"})
    config = CookieBackendConfig(secret=settings.session_key, key="zf_session")
    now = int(time.time())
    session = {SESSION_ACCOUNT: account_id, SESSION_EPOCH: 1, SESSION_ISSUED: now, SESSION_RENEWED: now}
    chunks = ClientSideSessionBackend(config=config).dump_data(session)
    assert len(chunks) == 1
    return chunks[0].decode()


def csrf_token(port: int) -> str:
    """The CSRF cookie any page sets (not tied to a session: one serves every client)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/login") as login:
        cookie_headers = login.headers.get_all("set-cookie") or []
    return next(c.split(";")[0].split("=", 1)[1] for c in cookie_headers if c.startswith("zf_csrf="))


def wait_healthy(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("server did not start")
