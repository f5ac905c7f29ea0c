"""HTTP for annual assessment and exit: the JSON API (``api``) and the HTML pages (``pages``)."""

from __future__ import annotations

from typing import Any

from app.assessments.controllers.api import (
    CaseApi,
    CloseYearApi,
    MyAssessmentApi,
    OfficerAssessmentApi,
    RatingApi,
)
from app.assessments.controllers.pages import AssessmentPages, MyAssessmentPages

ROUTES: list[Any] = [
    RatingApi,
    CaseApi,
    CloseYearApi,
    OfficerAssessmentApi,
    MyAssessmentApi,
    AssessmentPages,
    MyAssessmentPages,
]

__all__ = ["ROUTES"]
