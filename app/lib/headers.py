"""Security headers on every response: a CSP without inline scripts, no framing, no sniffing.

Answers to a logged-in account are also marked ``Cache-Control: no-store`` unless the handler chose
its own caching: they carry personal data (ID numbers, ratings) that a shared computer's browser
cache or an intermediate proxy must not keep.
"""

from __future__ import annotations

from collections.abc import Iterable

from litestar.datastructures import MutableScopeHeaders
from litestar.types import BeforeMessageSendHookHandler, Message, Scope

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
HSTS = "max-age=31536000; includeSubDomains"


def security_headers(*, hsts: bool) -> BeforeMessageSendHookHandler:
    """A ``before_send`` hook: it sees every response, also the 404 and 405 answers that the router
    gives before any middleware runs (a middleware would leave those without the headers)."""

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = MutableScopeHeaders.from_message(message)
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
        # scope["user"] is set by AuthMiddleware before the handler runs.
        if scope.get("user") is not None:
            headers.setdefault("Cache-Control", "no-store")
        if hsts:
            headers.setdefault("Strict-Transport-Security", HSTS)

    return hook


PREFERENCE_APPLIED_MINIMAL = ("Preference-Applied", "return=minimal")


def prefers_minimal(values: Iterable[str]) -> bool:
    """Whether ``Prefer`` header values (RFC 7240) ask for ``return=minimal``: an answer without the
    representation the client already has. Preferences are comma-separated ``name[=value]`` pairs
    with ``;`` parameters; names are case-insensitive, a value may be quoted, and when ``return`` is
    given more than once only the first counts (section 2)."""
    for value in values:
        for preference in value.split(","):
            name, _, rest = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == "return":
                return rest.strip().strip('"').lower() == "minimal"
    return False
