"""Every model, imported in one place so Alembic and the tests see the whole metadata."""

from app.accounts.models import Account, Agency, Officer, PostingHistory
from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase, ExitCaseEvent, YearClosing
from app.db import Base
from app.exams.models import ExamQualification
from app.lib.audit import AuditEvent
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord, TrainingYearTotal

metadata = Base.metadata

__all__ = [
    "Account",
    "Agency",
    "AssessmentFlag",
    "AssessmentRating",
    "AuditEvent",
    "ExamQualification",
    "ExitCase",
    "ExitCaseEvent",
    "Officer",
    "PostingHistory",
    "TrainingCourse",
    "TrainingImportBatch",
    "TrainingRecord",
    "TrainingYearTotal",
    "YearClosing",
    "metadata",
]
