"""Security headers on every response: a CSP without inline scripts, no framing, no sniffing.

Answers to a logged-in account are also marked ``Cache-Control: no-store`` unless the handler chose
its own caching: they carry personal data (ID numbers, ratings) that a shared computer's browser
cache or an intermediate proxy must not keep.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    gives before any middleware runs (a middleware would leave those without the headers).

    The header set is encoded once, here. Per response the hook reads the response's header names
    once and appends what the handler did not set itself (a handler's own choice wins)."""
    fixed: list[tuple[bytes, bytes]] = [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"same-origin"),
        (b"permissions-policy", PERMISSIONS_POLICY.encode()),
        (b"cross-origin-opener-policy", b"same-origin"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if hsts:
        fixed.append((b"strict-transport-security", HSTS.encode()))
    fixed_headers = tuple(fixed)
    fixed_names = frozenset(name for name, _ in fixed_headers)
    no_store = (b"cache-control", b"no-store")

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = message.get("headers")
        if headers is None:
            headers = message["headers"] = []
        elif not isinstance(headers, list):
            headers = message["headers"] = list(headers)
        present = {name.lower() for name, _ in headers}
        if fixed_names.isdisjoint(present):  # the usual case: append them all at once
            headers.extend(fixed_headers)
        else:
            headers.extend(h for h in fixed_headers if h[0] not in present)
        # scope["user"] is set by AuthMiddleware before the handler runs (absent on public routes).
        if no_store[0] not in present and scope.get("user") is not None:
            headers.append(no_store)

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
