"""The query parameters the accounts API and pages share: the officer list's filter."""

from __future__ import annotations

from typing import Annotated, Any

from litestar.di import NamedDependency, Provide
from litestar.params import FromQuery, QueryParameter

from app.accounts.selectors import OfficerFilter
from app.lib.enums import EmploymentStatus, Post, StaffType


def provide_officer_filter(
    q: FromQuery[str] = "",
    agency_id: FromQuery[int | None] = None,
    staff_type: FromQuery[StaffType | None] = None,
    post_: Annotated[Post | None, QueryParameter(name="post")] = None,
    employment_status: FromQuery[EmploymentStatus | None] = None,
    field: FromQuery[str] = "",
) -> OfficerFilter:
    return OfficerFilter(
        q=q,
        agency_id=agency_id,
        staff_type=staff_type,
        post=post_,
        employment_status=employment_status,
        field=field,
    )


OfficerQuery = NamedDependency[OfficerFilter]
"""The officer list's filter: ``f: OfficerQuery`` in a handler that has the dependency ``OFFICER_FILTER``."""
OFFICER_FILTER: dict[str, Any] = {"f": Provide(provide_officer_filter, sync_to_thread=False)}

__all__ = ["OFFICER_FILTER", "OfficerQuery"]
