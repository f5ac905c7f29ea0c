"""Every model, imported in one place so Alembic and the tests see the whole metadata."""

from app.accounts.models import Account, Agency, Officer, PostingHistory
from app.assessments.models import AssessmentFlag, AssessmentRating, ExitCase, ExitCaseEvent, YearClosing
from app.audit.models import AuditEvent, AuditOutbox
from app.certificates.models import (
    ApplicationBatch,
    Certificate,
    CertificateApplication,
    CertificateEvent,
    NumberSequence,
    ReapplicationBar,
    SigningKey,
)
from app.db import Base
from app.exams.models import (
    Exam,
    ExamAnswer,
    ExamAttempt,
    ExamBank,
    ExamEnrolment,
    ExamPartRow,
    ExamQualification,
    ExamQuestion,
    ExamSession,
)
from app.rosters import models as _roster_indexes  # noqa: F401 - indexes on officers
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord, TrainingYearTotal

metadata = Base.metadata

__all__ = [
    "Account",
    "Agency",
    "ApplicationBatch",
    "AssessmentFlag",
    "AssessmentRating",
    "AuditEvent",
    "AuditOutbox",
    "Certificate",
    "CertificateApplication",
    "CertificateEvent",
    "Exam",
    "ExamAnswer",
    "ExamAttempt",
    "ExamBank",
    "ExamEnrolment",
    "ExamPartRow",
    "ExamQualification",
    "ExamQuestion",
    "ExamSession",
    "ExitCase",
    "ExitCaseEvent",
    "NumberSequence",
    "Officer",
    "PostingHistory",
    "ReapplicationBar",
    "SigningKey",
    "TrainingCourse",
    "TrainingImportBatch",
    "TrainingRecord",
    "TrainingYearTotal",
    "YearClosing",
    "metadata",
]
