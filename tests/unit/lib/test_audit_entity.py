"""Where the trail files an event on a row (``audit.entity_of``): its entity type, id and agency, as
each use case recorded them when it spelled the audit call out (an agency under itself, the
year-end close under its scope, everything else under its own agency). The entity types are the
trail's vocabulary: renaming one would split an entity's history."""

from __future__ import annotations

from typing import Any

import pytest

from app.accounts.models import Account, Agency, Officer
from app.assessments.models import AssessmentRating, ExitCase, YearClosing
from app.audit.services import entity_of
from app.certificates.models import ApplicationBatch, Certificate, CertificateApplication
from app.exams.models import Exam, ExamAttempt, ExamBank, ExamQualification, ExamQuestion, ExamSession
from app.training.models import TrainingCourse, TrainingImportBatch, TrainingRecord


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (Agency(id=8), ("agency", 8, 8)),
        (Officer(id=1, agency_id=5), ("officer", 1, 5)),
        (Account(id=2, agency_id=6), ("account", 2, 6)),
        (AssessmentRating(id=1, agency_id=5), ("assessment_rating", 1, 5)),
        (ExitCase(id=2, agency_id=6), ("exit_case", 2, 6)),
        (YearClosing(id=3, scope_agency_id=7), ("assessment_year_closing", 3, 7)),
        (YearClosing(id=3, scope_agency_id=None), ("assessment_year_closing", 3, None)),
        (TrainingCourse(id=4, agency_id=5), ("training_course", 4, 5)),
        (TrainingRecord(id=5), ("training_record", 5, None)),  # callers name the officer's agency
        (TrainingImportBatch(id=6, agency_id=7), ("training_import_batch", 6, 7)),
        (Exam(id=7, agency_id=8), ("exam", 7, 8)),
        (ExamSession(id=8, agency_id=9), ("exam_session", 8, 9)),
        (ExamBank(id=9), ("exam_bank", 9, None)),
        (ExamQuestion(id=10), ("exam_question", 10, None)),
        (ExamAttempt(id=11, agency_id=3), ("exam_attempt", 11, 3)),
        (ExamQualification(id=12), ("exam_qualification", 12, None)),
        (Certificate(id=13, agency_id=4), ("certificate", 13, 4)),
        (ApplicationBatch(id=14, agency_id=5), ("certificate_application_batch", 14, 5)),
        (CertificateApplication(id=15, agency_id=6), ("certificate_application", 15, 6)),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, tuple) else "",
)
def test_an_event_is_filed_on_its_row_under_its_agency(
    row: Any, expected: tuple[str, int, int | None]
) -> None:
    assert entity_of(row) == expected
