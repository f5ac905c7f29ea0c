"""Use cases of the exam domain, one module per use case; each runs in its caller's transaction
(the request's edge, a console command, the sweeper's task), never commits.

- ``banks``: importing question banks, the bank list
- ``questions``: a bank's questions for review, filling in the basis of a draft (草稿)
- ``pools``: the pool a part draws from, question versions, the stored draw
- ``exams`` / ``sessions``: defining exams, opening sessions, enrolment
- ``attempts``: the candidate's attempt (我的考试, start, submit, leave)
- ``answers``: the autosave
- ``grading``: closing and grading, the qualification, the time-up sweep
- ``views``: the candidate's view of an attempt and its result
- ``results``: selectors of results and item statistics
- ``export``: the results as CSV

Scope: an authority administrator runs the exams and sessions of their agency and those above it,
and enrols and sees results of officers in their own subtree only. A candidate sees only their own
enrolments and attempts; anything else answers "not found".

This package re-exports what other packages import from ``app.exams.services`` (the exam fast
lane, the demo data, the rosters' export tests); code of the exam domain imports the modules.
"""

from __future__ import annotations

from app.exams.cache import QuestionContent
from app.exams.services.answers import answers_save
from app.exams.services.attempts import (
    attempt_leave,
    attempt_start,
    attempt_start_view,
    attempt_submit,
    my_sessions,
)
from app.exams.services.banks import bank_import, bank_list, report_from_parse
from app.exams.services.common import part_out, session_out, session_state
from app.exams.services.exams import exam_create, exam_detail, exam_list
from app.exams.services.export import results_csv
from app.exams.services.grading import (
    attempt_close,
    attempts_sweep,
    close_event_data,
    grade_attempt,
    latest_of,
)
from app.exams.services.pools import cached_questions, paper_of
from app.exams.services.results import session_results, session_stats
from app.exams.services.sessions import session_create, session_detail, session_enrol
from app.exams.services.views import Sheet, attempt_view, closed_view_without_review

__all__ = [
    "QuestionContent",
    "Sheet",
    "answers_save",
    "attempt_close",
    "attempt_leave",
    "attempt_start",
    "attempt_start_view",
    "attempt_submit",
    "attempt_view",
    "attempts_sweep",
    "bank_import",
    "bank_list",
    "cached_questions",
    "close_event_data",
    "closed_view_without_review",
    "exam_create",
    "exam_detail",
    "exam_list",
    "grade_attempt",
    "latest_of",
    "my_sessions",
    "paper_of",
    "part_out",
    "report_from_parse",
    "results_csv",
    "session_create",
    "session_detail",
    "session_enrol",
    "session_out",
    "session_results",
    "session_state",
    "session_stats",
]
