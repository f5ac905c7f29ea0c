"""Where an assessment event is filed: its entity and its agency, as each use case recorded them
when it spelled the audit call out (the year-end close under its scope, an import under the
importer's agency, the console's none)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.accounts.models import Agency
from app.assessments.models import AssessmentRating, ExitCase, YearClosing
from app.assessments.services.audited import Audited, _entity
from app.lib.security import Principal, system_principal

CONSOLE = system_principal()
ADMIN = replace(CONSOLE, account_id=5, agency_id=9)


@pytest.mark.parametrize(
    ("row", "principal", "expected"),
    [
        (AssessmentRating(id=1, agency_id=5), ADMIN, ("assessment_rating", 1, 5)),
        (ExitCase(id=2, agency_id=6), ADMIN, ("exit_case", 2, 6)),
        (YearClosing(id=3, scope_agency_id=7), ADMIN, ("assessment_year_closing", 3, 7)),
        (YearClosing(id=3, scope_agency_id=None), CONSOLE, ("assessment_year_closing", 3, None)),
        (Agency(id=8), ADMIN, ("agency", 8, 8)),
        (None, ADMIN, ("agency", 9, 9)),
        (None, CONSOLE, ("agency", 0, None)),
    ],
)
def test_event_is_filed_on_its_row_under_its_agency(
    row: Audited | None, principal: Principal, expected: tuple[str, int, int | None]
) -> None:
    assert _entity(principal, row) == expected
