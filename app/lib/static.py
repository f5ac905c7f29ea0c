"""The static files (app/static): where they are, and the versioned address every page links.

A page links ``static_url("css/app.css")`` = ``/static/css/app.css?v=<content hash>``; the files are
served with ``Cache-Control: max-age=31536000, public, immutable``. A browser fetches each file once
(the log-in page's style sheet is the exam page's), and a release that changes a file changes its
address, so nobody keeps an old copy. The hashes are taken once per process.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from litestar.datastructures import CacheControlHeader

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/static"

CACHE_FOREVER = CacheControlHeader(public=True, max_age=365 * 24 * 3600, immutable=True)
"""What the static router sends: the address changes with the content (``static_url``)."""


@cache
def _versions() -> dict[str, str]:
    return {
        p.relative_to(STATIC_DIR).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        for p in sorted(STATIC_DIR.rglob("*"))
        if p.is_file()
    }


def static_url(name: str) -> str:
    """The address of a static file, versioned by its content; an unknown file is a KeyError (a
    template that names a missing file fails its test, not a visitor's browser)."""
    return f"{STATIC_PATH}/{name}?v={_versions()[name]}"
