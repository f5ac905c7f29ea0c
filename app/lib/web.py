"""Helpers for HTML controllers: rendering with the shell's context, form decoding, pagination."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import MediaType, Request
from litestar.datastructures import State
from litestar.response import Template
from sqlalchemy.ext.asyncio import AsyncSession

from app.lib.errors import DomainError, FieldError, translate_validation
from app.lib.security import Principal

T = TypeVar("T")


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


def page_args(
    page: int | None, per_page: int | None, *, default: int = 50, maximum: int = 200
) -> tuple[int, int]:
    p = max(1, page or 1)
    pp = min(max(1, per_page or default), maximum)
    return p, pp


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


async def provide_db(state: State, request: Request[Any, Any, Any]) -> AsyncIterator[AsyncSession]:
    """Dependency: one AsyncSession per request (services commit their own transactions).

    Requests with unsafe methods are the writers and get write-intent sessions.
    """
    maker = state.db_sessionmaker if request.method in SAFE_METHODS else state.db_write_sessionmaker
    async with maker() as session:
        yield session


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    user = request.scope.get("user")
    assert user is not None, "route must be guarded"
    return user


__all__ = ["AsyncSession", "Pager", "form_to_struct", "page_args", "principal_of", "provide_db", "render"]
