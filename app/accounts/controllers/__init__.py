"""HTTP for the accounts domain: the JSON API (``api``), the HTML pages (``pages``), signing in and
out (``auth``) and the officer import (``imports``). ``ROUTES`` is what the application mounts."""

from __future__ import annotations

from typing import Any

from app.accounts.controllers import api, auth, imports, pages

ROUTES: list[Any] = [
    auth.AuthApi,
    *api.ROUTES,
    auth.AuthPages,
    *pages.ROUTES,
    *imports.IMPORT_ROUTES,
]

__all__ = ["ROUTES"]
