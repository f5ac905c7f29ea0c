"""HTTP for the exam domain: the JSON API (``api``) and the HTML pages (``pages``), side by side."""

from __future__ import annotations

from typing import Any

from app.exams.api import BankApi, ExamApi, MyExamApi, QuestionApi
from app.exams.pages import ExamPages, MyExamPages

ROUTES: list[Any] = [BankApi, QuestionApi, ExamApi, MyExamApi, ExamPages, MyExamPages]

__all__ = ["ROUTES"]
