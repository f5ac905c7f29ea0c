"""Use cases of annual assessment and exit, one module each: ``ratings`` (entry, confirmation,
correction), ``cases`` (an exit case's due process), ``closing`` (the year-end close); the reads are
in ``app.assessments.selectors``.

The names other domains and bench/ import from here stay importable (``close_year``,
``system_principal``); inside the domain, import from the module that defines a name.
"""

from __future__ import annotations

from app.assessments.selectors import (
    case_detail,
    case_list,
    closing_list,
    officer_assessment,
    rating_get,
    rating_list,
    rating_out,
)
from app.assessments.services.cases import (
    case_decide,
    case_request_review,
    case_review_decide,
    case_statement,
)
from app.assessments.services.closing import Progress, close_candidates, close_year
from app.assessments.services.ratings import (
    rating_confirm,
    rating_confirm_all,
    rating_correct,
    rating_save,
)
from app.lib.security import system_principal

__all__ = [
    "Progress",
    "case_decide",
    "case_detail",
    "case_list",
    "case_request_review",
    "case_review_decide",
    "case_statement",
    "close_candidates",
    "close_year",
    "closing_list",
    "officer_assessment",
    "rating_confirm",
    "rating_confirm_all",
    "rating_correct",
    "rating_get",
    "rating_list",
    "rating_out",
    "rating_save",
    "system_principal",
]
