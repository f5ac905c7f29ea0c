"""The static files (app/static): the versioned address every page links, and their route.

A page links ``static_url("css/app.css")`` = ``/static/css/app.css?v=<content hash>``; the files are
served with ``Cache-Control: max-age=31536000, public, immutable``. A browser fetches each file once
(the log-in page's style sheet is the exam page's), and a release that changes a file changes its
address, so nobody keeps an old copy.

The files are a few kilobytes, read once per process and answered from memory (``static_files``):
Litestar's file route stat()ed and read each one through a worker thread on every request, which
cost as much as a page. Changing a file takes a restart, as a release does.
"""

from __future__ import annotations

import hashlib
import mimetypes
from functools import cache
from pathlib import Path
from typing import Annotated

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.exceptions import NotFoundException
from litestar.params import Parameter

from app.lib.guards import PUBLIC
from app.lib.web import Req

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_PATH = "/static"

CACHE_FOREVER = CacheControlHeader(public=True, max_age=365 * 24 * 3600, immutable=True)
"""What the static router sends: the address changes with the content (``static_url``)."""


@cache
def _files() -> dict[str, tuple[bytes, str, str]]:
    """name -> (content, content type, version): every file under STATIC_DIR, read once."""
    files = {}
    for p in sorted(STATIC_DIR.rglob("*")):
        if p.is_file():
            data = p.read_bytes()
            kind = mimetypes.guess_type(p.name)[0] or "application/octet-stream"
            if kind.startswith("text/") or kind in ("application/javascript", "text/javascript"):
                kind += "; charset=utf-8"
            files[p.relative_to(STATIC_DIR).as_posix()] = (data, kind, hashlib.sha256(data).hexdigest()[:12])
    return files


def _versions() -> dict[str, str]:
    return {name: version for name, (_d, _k, version) in _files().items()}


def static_url(name: str) -> str:
    """The address of a static file, versioned by its content; an unknown file is a KeyError (a
    template that names a missing file fails its test, not a visitor's browser)."""
    return f"{STATIC_PATH}/{name}?v={_versions()[name]}"


_HEADERS = {"cache-control": CACHE_FOREVER.to_header()}


@get(f"{STATIC_PATH}/{{name:path}}", opt=PUBLIC, include_in_schema=False, sync_to_thread=False)
def static_files(request: Req, name: Annotated[str, Parameter()]) -> Response[bytes]:
    """A static file from memory; ``If-None-Match`` with its version: 304."""
    found = _files().get(name.lstrip("/"))
    if found is None:
        raise NotFoundException("文件不存在")
    data, kind, version = found
    etag = f'"{version}"'
    headers = {**_HEADERS, "etag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(b"", status_code=304, headers=headers)
    return Response(data, media_type=kind, headers=headers)
