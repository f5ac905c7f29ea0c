"""HTTP for the training domain: the JSON API (``api``) and the HTML pages (``pages``, ``import_pages``)."""

from typing import Any

from app.training.controllers.api import API_ROUTES
from app.training.controllers.import_pages import TrainingImportPages
from app.training.controllers.pages import MyTrainingPages, TrainingPages

ROUTES: list[Any] = [*API_ROUTES, TrainingPages, TrainingImportPages, MyTrainingPages]

__all__ = ["ROUTES"]
