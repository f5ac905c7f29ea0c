"""HTTP for annual assessment and exit: the JSON API (``api``) and the HTML pages (``pages``)."""

from __future__ import annotations

from typing import Any

from app.assessments.controllers.api import (
    CASE_STEP_API,
    CaseApi,
    CloseYearApi,
    MyAssessmentApi,
    OfficerAssessmentApi,
    RatingApi,
)
from app.assessments.controllers.pages import CASE_STEP_PAGES, AssessmentPages, MyAssessmentPages

ROUTES: list[Any] = [
    RatingApi,
    CaseApi,
    CASE_STEP_API,
    CloseYearApi,
    OfficerAssessmentApi,
    MyAssessmentApi,
    AssessmentPages,
    MyAssessmentPages,
    CASE_STEP_PAGES,
]

__all__ = ["ROUTES"]
