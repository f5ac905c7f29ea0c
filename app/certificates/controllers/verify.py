"""The public verification (网上查询): what anyone reaches by scanning a card or typing its number.

These routes are public and cookieless: they are mounted on the app's public router (``app.asgi``),
which has no session, authentication or CSRF middleware, so a scan never sets or reads a cookie.
Every lookup is rate-limited per client address.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import msgspec
from litestar import Controller, MediaType, Request, get, post
from litestar.params import FromPath, FromQuery, JSONBody
from litestar.response import Redirect, Response
from litestar.types import Receive, Scope, Send

from app.certificates import keys, public
from app.certificates.schemas import CheckIn, CheckOut
from app.lib import clock
from app.lib.errors import NotFound
from app.lib.guards import PUBLIC
from app.lib.ratelimit import RateLimiter, client_key
from app.lib.web import Db, render

Req = Request[Any, Any, Any]

_NO_STORE = {"Cache-Control": "no-store"}
_JSON = msgspec.json.Encoder()
_JSON_TYPE = b"application/json"
_HTML_TYPE = b"text/html; charset=utf-8"


class Answer:
    """A finished answer to a scan: an ASGI app the handler returns (Litestar sends it as it is,
    through the app's ``before_send`` hooks: the security headers are added there). The body is
    encoded or rendered in the handler; ``no_store``: a card's live status is never cached."""

    __slots__ = ("body", "content_type", "no_store", "status")

    def __init__(self, body: bytes, content_type: bytes, *, status: int = 200, no_store: bool = True) -> None:
        self.body, self.content_type, self.status, self.no_store = body, content_type, status, no_store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", self.content_type), (b"content-length", str(len(self.body)).encode())]
        if self.no_store:
            headers.append((b"cache-control", b"no-store"))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


async def _limit(request: Req) -> None:
    limiter: RateLimiter = request.app.state.verify_limiter
    await limiter.hit(client_key(request.scope.get("client")))


def _page(request: Req) -> Any:
    """The public page's compiled template, kept on the app state: Jinja's own lookup checks the
    file's modification time on every call, a system call per scan."""
    state = request.app.state
    page = state.get("verify_page")
    if page is None:
        engine = request.app.template_engine
        assert engine is not None, "the app is built with its template engine"
        page = state.verify_page = engine.get_template("certificates/public.html")
    return page


def _accept(request: Req) -> str:
    # The scan's hot path reads the one header it needs from the ASGI scope, without building
    # the request's header map.
    for name, value in request.scope["headers"]:
        if name == b"accept":
            return value.decode("latin-1")
    return ""


class PublicVerification(Controller):
    """The card's public page and its JSON, the photo, the QR check, the published keys."""

    opt = PUBLIC
    include_in_schema = True
    tags = ["公开查询"]

    @get("/v", summary="证件查询（按证号）", include_in_schema=False, media_type=MediaType.HTML)
    async def lookup_form(self, request: Req, number: FromQuery[str] = "") -> Any:
        number = number.strip().upper()
        if not number:
            return render("certificates/lookup.html", request, number="", error="")
        if not public.number_ok(number):
            return render(
                "certificates/lookup.html",
                request,
                number=number,
                error="证号只能包含英文字母、数字和“-”，请核对后重新输入",
                status_code=400,
            )
        return Redirect(f"/v/{quote(number)}", status_code=303)

    @get(
        "/v/{number:str}",
        summary="证件核验：证件信息和实时状态",
        description="Accept: application/json 时返回 JSON；否则返回手机页面。二维码的签名部分在网址的 # 之后，"
        "浏览器不会发送给服务器，页面脚本会把它提交到 /api/public/certificates/check 比对。",
        media_type=MediaType.HTML,
    )
    async def verify(self, request: Req, number: FromPath[str]) -> Answer:
        """Every scan lands here: the answer is encoded (or the page rendered) in place and sent as
        it is, without the generic response pipeline (per-request header maps, re-encoding)."""
        await _limit(request)
        today = clock.today()
        row = await request.app.state.public_lookup.get(number)
        accept = _accept(request)
        if "application/json" in accept and "text/html" not in accept:
            if row is None:
                raise NotFound("未查到该证号的证件")
            return Answer(_JSON.encode(public.public_view(row, today)), _JSON_TYPE)
        page = _page(request)
        if row is None:
            if "text/html" not in accept:
                raise NotFound("未查到该证号的证件")  # API clients (Accept: */*) get problem+json
            html = page.render(cert=None, number=number if public.number_ok(number) else "")
            return Answer(html.encode(), _HTML_TYPE, status=404, no_store=False)
        view = public.public_view(row, today)
        html = page.render(cert=view, number=view.number, note=public.STATUS_NOTES[view.status])
        return Answer(html.encode(), _HTML_TYPE)

    @get("/v/{number:str}/photo", summary="证件照片（仅限该证件的公开页面）", include_in_schema=False)
    async def photo(self, request: Req, number: FromPath[str]) -> Response[bytes]:
        from app.accounts.photos import read_photo

        await _limit(request)
        row = await request.app.state.public_lookup.get(number)
        data = read_photo(row.photo_path) if row is not None and row.photo_path else None
        if data is None:
            raise NotFound("没有照片")
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=300"})

    @post(
        "/api/public/certificates/check",
        summary="比对扫描到的二维码与证件当前签发的二维码",
        description="fragment 为扫码打开的网址中 # 之后的部分。公开接口，无需登录和 CSRF 令牌，按客户端限流。",
        status_code=200,
        # Read-only and cookieless: the public router has no CSRF middleware; the key says so to
        # the route-walking CSRF test (tests/integration/lib/test_csrf.py), which pins this exemption.
        opt={"exclude_from_csrf": True},
    )
    async def check(self, request: Req, db: Db, data: JSONBody[CheckIn]) -> Response[CheckOut]:
        await _limit(request)
        row = await request.app.state.public_lookup.get(data.number)
        jwks = await keys.jwks(db) if row is not None else None
        base = request.app.state.settings.public_base_url
        return Response(public.check(row, data.fragment, clock.today(), jwks, base), headers=_NO_STORE)

    @get(
        "/.well-known/jwks.json",
        summary="二维码签名公钥（RFC 8037 OKP，JWK Set）",
        media_type="application/jwk-set+json",
    )
    async def jwks(self, db: Db) -> Response[dict[str, Any]]:
        return Response(
            await keys.jwks(db),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "public, max-age=300"},
        )
