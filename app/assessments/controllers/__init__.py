"""HTTP for annual assessment and exit: the JSON API (``api``) and the HTML pages (``pages``)."""

from __future__ import annotations

from typing import Any

from app.assessments.controllers.api import API
from app.assessments.controllers.pages import PAGES

ROUTES: list[Any] = [API, PAGES]

__all__ = ["ROUTES"]
