"""Use cases of the training domain that write: one per module, each inside the caller's transaction.

``courses`` (登记/修改课程), ``attendance`` (登记参训), ``corrections`` (冲销/更正), ``imports`` (签到表导入),
``totals`` (the yearly totals kept and rebuilt); ``audit`` is the audit event they record. Reads are
in ``app.training.selectors``. No service commits: the request's edge (``app.lib.web``) or the
console's session (``app.cli.base``) does.

The names below are what other domains, ``bench/`` and older tests import from
``app.training.services``; inside the training domain, import from the module that defines them.
"""

from app.lib.security import actor_of, system_principal
from app.training.access import entered_by
from app.training.exports import compliance_csv
from app.training.selectors.batches import batch_get, batch_list
from app.training.selectors.compliance import (
    Compliance,
    gc_paused,
    key_order_scan,
    training_compliance,
    value_by_agency,
)
from app.training.selectors.courses import CourseFilter, course_detail, course_get, course_list
from app.training.selectors.records import officer_year, record_detail, record_get
from app.training.selectors.totals import totals_check
from app.training.services.corrections import record_amend, record_reverse
from app.training.services.courses import course_create
from app.training.services.totals import totals_add, totals_rebuild

__all__ = [
    "Compliance",
    "CourseFilter",
    "actor_of",
    "batch_get",
    "batch_list",
    "compliance_csv",
    "course_create",
    "course_detail",
    "course_get",
    "course_list",
    "entered_by",
    "gc_paused",
    "key_order_scan",
    "officer_year",
    "record_amend",
    "record_detail",
    "record_get",
    "record_reverse",
    "system_principal",
    "totals_add",
    "totals_check",
    "totals_rebuild",
    "training_compliance",
    "value_by_agency",
]
