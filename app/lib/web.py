"""Helpers for the controllers of every domain: rendering with the shell's context, form decoding,
pagination, the query parameters they share, the year choices, downloads, the request's session."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict, TypeVar
from urllib.parse import quote

import msgspec
from litestar import MediaType, Request, Response
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.params import MultipartBody, QueryParameter, URLEncodedBody
from litestar.response import Redirect, Template
from litestar.types import Message, Scope
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib import clock
from app.lib.errors import DomainError, FieldError, Forbidden, NotFound, translate_validation
from app.lib.security import Principal

T = TypeVar("T")

# Litestar 3 declares dependencies and bodies explicitly; these are the project's spellings of the
# ones every controller needs (path and query parameters use litestar.params.FromPath / FromQuery).
Db = NamedDependency[AsyncSession]
"""The request's session (``provide_db``): ``db: Db``."""
Form = URLEncodedBody[dict[str, Any]]
"""An HTML form post: ``data: Form``."""
MultipartForm = MultipartBody[dict[str, Any]]
"""A form with files: ``data: MultipartForm``."""

Req = Request[Any, Any, Any]
"""The request, as every handler takes it: ``request: Req``."""
PageNo = Annotated[int, QueryParameter(ge=1, le=100000)]
"""A list's page number: ``page: PageNo = 1``."""
PerPage = Annotated[int, QueryParameter(ge=1, le=200)]
"""A JSON list's page size, 200 at the most: ``per_page: PerPage = 50``."""
Year = Annotated[int | None, QueryParameter(ge=2000, le=2100, description="年度（默认今年）")]
"""A year to show, this year when not given (``year_or_this``): ``year: Year = None``."""


def year_or_this(year: int | None) -> int:
    return year or clock.today().year


def recent_years() -> list[int]:
    """The years a page offers to pick: this one and the five before, newest first."""
    this = clock.today().year
    return list(range(this, this - 6, -1))


def own_officer_id(request: Request[Any, Any, Any]) -> int:
    """The officer of the signed-in account (the "my ..." pages and API), or 404."""
    officer_id = principal_of(request).officer_id
    if officer_id is None:
        raise NotFound("您的账号未关联执法人员")
    return officer_id


def download_headers(ascii_name: str, name: str) -> dict[str, str]:
    """The headers of a file to save, never cached: its Chinese ``name`` (RFC 6266), ``ascii_name``
    for clients that only read the plain ``filename``."""
    return {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
        "Cache-Control": "no-store",
    }


def render(
    template: str, request: Request[Any, Any, Any], *, status_code: int = 200, **context: Any
) -> Template:
    context.setdefault("user", request.scope.get("user"))
    context.setdefault("path", request.url.path)
    # Always HTML: a handler annotated ``-> Any`` (a page that may also redirect) would otherwise send
    # the page as application/json, which a browser shows as source text.
    return Template(
        template_name=template, context=context, status_code=status_code, media_type=MediaType.HTML
    )


class Again(TypedDict, total=False):
    """How a form page is shown again after a refused post (what ``form_again`` passes): the posted
    ``form``, the ``errors`` beside its fields, the refusal's ``status``. A page method takes them as
    ``**again: Unpack[Again]`` and hands them to ``form_page``."""

    form: dict[str, Any]
    errors: dict[str, str]
    status: int


def form_page(
    template: str,
    request: Request[Any, Any, Any],
    *,
    form: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    **context: Any,
) -> Template:
    """A page with a form: empty and 200 at first, or again with what was posted and its errors."""
    return render(template, request, status_code=status, form=form or {}, errors=errors or {}, **context)


def text_fields(form: dict[str, Any]) -> dict[str, str]:
    """A posted form's text fields (a multipart form's files left out): what a page shows again."""
    return {k: v for k, v in form.items() if isinstance(v, str)}


def form_to_struct(form: dict[str, Any], struct: type[T], *, booleans: tuple[str, ...] = ()) -> T:
    """Decode a submitted form into a struct; empty strings mean 'not given'. Raises DomainError."""
    data: dict[str, Any] = {}
    fields = set(getattr(struct, "__struct_fields__", ()))
    for key, value in form.items():
        if key not in fields:
            continue
        if isinstance(value, str):
            value = value.strip()
            if value == "":
                continue
        data[key] = value
    for key in booleans:
        data[key] = key in form and form[key] not in ("", "0", "false", "off")
    try:
        return msgspec.convert(data, struct, strict=False)
    except msgspec.ValidationError as exc:
        msg = str(exc)
        m = re.search(r"at `\$\.([^`]+)`", msg) or re.search(r"required field `([^`]+)`", msg)
        field = m.group(1) if m else "form"
        raise DomainError(
            f"{translate_validation(msg)}", errors=[FieldError(field, translate_validation(msg))]
        ) from exc


@dataclass(frozen=True)
class Pager:
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def paged(request: Request[Any, Any, Any], page: int, per_page: int, total: int) -> dict[str, Any]:
    """What a list page's ``pager`` macro needs: the ``Pager`` (``pg``) and the query without its page."""
    query = {k: v for k, v in request.query_params.items() if k != "page"}
    return {"pg": Pager(page, per_page, total), "query": query}


@dataclass(frozen=True)
class PageRequest:
    """The page a JSON list is asked for (``page``, ``per_page`` ≤ 200, 50 by default)."""

    page: int
    per_page: int

    def of(self, page_type: Callable[..., T], items: list[Any], total: int, **more: Any) -> T:
        """The answer: ``page_type`` (``OfficerPage``, ``CoursePage``...) with this page's items."""
        return page_type(items=items, total=total, page=self.page, per_page=self.per_page, **more)


def provide_paging(page: PageNo = 1, per_page: PerPage = 50) -> PageRequest:
    return PageRequest(page, per_page)


Paging = NamedDependency[PageRequest]
"""A JSON list's query parameters ``page`` and ``per_page``: ``paging: Paging`` in a handler that
has the dependency ``PAGING``."""
PAGING: dict[str, Any] = {"paging": Provide(provide_paging, sync_to_thread=False)}


async def list_page(
    template: str,
    request: Request[Any, Any, Any],
    fetch: Callable[..., Awaitable[tuple[list[Any], int]]],
    *,
    page: int,
    per_page: int = 50,
    **context: Any,
) -> Template:
    """One page of a list: ``fetch(page=..., per_page=...)`` gives its items and their total; the
    template gets ``items``, the pager's ``pg`` and ``query`` (see ``paged``) and ``context``."""
    page, per_page = page_args(page, per_page)
    items, total = await fetch(page=page, per_page=per_page)
    return render(template, request, **{"items": items, **paged(request, page, per_page, total), **context})


def page_args(
    page: int | None, per_page: int | None, *, default: int = 50, maximum: int = 200
) -> tuple[int, int]:
    p = max(1, page or 1)
    pp = min(max(1, per_page or default), maximum)
    return p, pp


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


_SESSION = "app.db_session"
"""Where the request's session waits in ``scope["state"]`` for ``transaction_edge`` to end it."""
_KEEP_REFUSAL = "app.db_keep_refusal"


def keep_refusal(request: Request[Any, Any, Any]) -> None:
    """Commit this request's transaction although it answers with a refusal (a 4xx it returns, or a
    ``DomainError`` it raises): for a refusal that is itself on record — a rejected import kept as a
    batch with its errors, a wrong password counted towards the lockout. Any other exception, and
    any 5xx, still rolls everything back."""
    request.scope["state"][_KEEP_REFUSAL] = True


def session_provider(
    *,
    write: bool | None = None,
    read_only: bool = False,
    writes: Callable[[AsyncSession, Request[Any, Any, Any]], Awaitable[bool]] | None = None,
    in_place: bool = False,
) -> Callable[..., AsyncIterator[AsyncSession]]:
    """A ``db`` dependency: one AsyncSession per request, one transaction at the edge.

    Services never commit: the request's work is committed by ``transaction_edge`` when the
    response is a 2xx or 3xx (a form's 303 included) and rolled back otherwise, so a use case that
    fails half-way leaves the database exactly as before. ``write=None``: requests with unsafe
    methods are the writers and get write-intent sessions (a write lock taken up front on SQLite);
    ``write=True``: write intent whatever the method (a GET that starts an exam writes).
    ``read_only=True``: a session that cannot write, on the read database (``DATABASE_READ_URL``,
    the primary when unset), for the public pages that must keep answering while the primary is down.
    ``writes``: asked for a request with a safe method, on its read session, whether this one will
    write after all; if so the read session is closed and a write-intent one serves the request.
    ``in_place``: the read sessions cannot write and, on SQLite, are queried on the loop's thread
    (``app.lib.inplace_sqlite``): for routes whose reads are a few rows by an index.
    """

    async def provide(state: State, request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
        if read_only:
            session = state.db_read_sessionmaker()
        else:
            writer = write if write is not None else request.method not in SAFE_METHODS
            reads = state.db_in_place_sessionmaker if in_place else state.db_sessionmaker
            session = (state.db_write_sessionmaker if writer else reads)()
            if not writer and writes is not None:
                try:
                    writer = await writes(session, request)
                finally:
                    if writer:
                        await session.close()
                if writer:
                    session = state.db_write_sessionmaker()
        request.scope["state"][_SESSION] = session
        try:
            yield session
        except BaseException as exc:
            # The handler raised: nothing it wrote may stay, unless it is a refusal kept on record.
            # The error page is rendered without the session.
            state_ = request.scope["state"]
            state_.pop(_SESSION, None)
            try:
                if state_.pop(_KEEP_REFUSAL, False) and isinstance(exc, DomainError):
                    await session.commit()
            finally:
                await session.close()
            raise

    return provide


provide_db = session_provider()
provide_write_db = session_provider(write=True)
provide_read_db = session_provider(read_only=True)


async def transaction_edge(message: Message, scope: Scope) -> None:
    """``before_send``: end the request's transaction before its status line leaves.

    Commit on 2xx/3xx, roll back on anything else (the advanced-alchemy ``autocommit_include_redirects``
    rule): a client is told "done" only after the commit. A failed commit raises here, before
    anything was sent, and the exception handler answers instead.
    """
    if message["type"] != "http.response.start":
        return
    session: AsyncSession | None = scope.get("state", {}).pop(_SESSION, None)
    keep = scope.get("state", {}).pop(_KEEP_REFUSAL, False)
    if session is None:
        return
    try:
        if 200 <= message["status"] < 400 or (keep and message["status"] < 500):
            await session.commit()
        else:
            await session.rollback()
    finally:
        await session.close()


async def close_unsent(request: Request[Any, Any, Any]) -> None:
    """``after_response``: a session whose response never started (a dropped client) is closed."""
    session: AsyncSession | None = request.scope["state"].pop(_SESSION, None)
    if session is not None:
        await session.close()


R = TypeVar("R")


async def form_post(
    db: AsyncSession,
    call: Callable[[], Awaitable[R]],
    *,
    redirect: str | Callable[[R], str],
    rerender: Callable[[DomainError], Awaitable[Response[Any]]],
    passthrough: tuple[type[DomainError], ...] = (NotFound, Forbidden),
) -> Response[Any]:
    """The HTML form post: parse and call the use case, then 303 to ``redirect``; or, when the
    input is refused, roll back what the call wrote and re-render the form with its field errors
    (``rerender`` gets the error; its status is the error's). ``passthrough`` errors (no such
    record, no right to it) are not form errors: they go to the error page.
    """
    try:
        result = await call()
    except passthrough:
        raise
    except DomainError as exc:
        # Drop the refused call's writes and its failed flush, so the page re-reads the database.
        await db.rollback()
        return await rerender(exc)
    return Redirect(redirect(result) if callable(redirect) else redirect, status_code=303)


def form_call(
    request: Request[Any, Any, Any],
    db: AsyncSession,
    service: Callable[..., Awaitable[R]],
    form: dict[str, Any],
    struct: type[Any],
    *,
    booleans: tuple[str, ...] = (),
    **ids: Any,
) -> Callable[[], Awaitable[R]]:
    """The ``call`` of the usual ``form_post``: the posted ``form`` decoded into ``struct``, then the
    use case ``service`` with the signed-in principal and the record's ``ids`` (``officer_id=...``)."""

    async def call() -> R:
        payload = form_to_struct(form, struct, booleans=booleans)
        return await service(db, principal=principal_of(request), data=payload, **ids)

    return call


def form_again(
    page: Callable[..., Awaitable[Response[Any]]],
    form: dict[str, Any],
    fields: tuple[str, ...] | None = None,
) -> Callable[[DomainError], Awaitable[Response[Any]]]:
    """The usual ``rerender`` of ``form_post``: ``page`` again with the posted ``form``, the refusal's
    messages beside its ``fields`` (see ``DomainError.form_errors``) and the refusal's status.
    ``page`` takes ``form``, ``errors`` and ``status`` (a ``functools.partial`` of a page method)."""

    async def rerender(exc: DomainError) -> Response[Any]:
        return await page(form=form, errors=exc.form_errors(fields), status=exc.status_code)

    return rerender


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    assert user is not None, "route must be guarded"
    return user


__all__ = [
    "PAGING",
    "Again",
    "AsyncSession",
    "Db",
    "Form",
    "MultipartForm",
    "PageNo",
    "PageRequest",
    "Pager",
    "Paging",
    "PerPage",
    "Req",
    "Year",
    "close_unsent",
    "download_headers",
    "form_again",
    "form_call",
    "form_page",
    "form_post",
    "form_to_struct",
    "keep_refusal",
    "list_page",
    "own_officer_id",
    "page_args",
    "paged",
    "principal_of",
    "provide_db",
    "provide_read_db",
    "provide_write_db",
    "recent_years",
    "render",
    "session_provider",
    "text_fields",
    "transaction_edge",
    "year_or_this",
]
