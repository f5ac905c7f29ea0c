"""Use cases of certificates, one module each: applications and their approval, issuance and
numbering, status changes, card files; the read-only queries are in ``app.certificates.selectors``.

Services never commit: the request's edge (``app.lib.web.transaction_edge``) or the console's
(``app.cli.base.session``) does. ``certificates_withdraw_for_officer`` runs inside the exit
procedure's use case (assessments).
"""

from app.certificates.selectors import (
    APPLICATION_LABELS,
    application_list,
    certificate_detail,
    certificate_get,
    certificate_list,
    certificate_out,
)
from app.certificates.services.applications import application_decide, certificate_apply
from app.certificates.services.bars import exit_bar_lift, exit_bar_record
from app.certificates.services.cards import card_file_for, certificate_card_file
from app.certificates.services.eligibility import ApplicationRefused, eligibility_check
from app.certificates.services.issuance import IssueContext, number_next
from app.certificates.services.status import certificate_act, certificates_withdraw_for_officer

__all__ = [
    "APPLICATION_LABELS",
    "ApplicationRefused",
    "IssueContext",
    "application_decide",
    "application_list",
    "card_file_for",
    "certificate_act",
    "certificate_apply",
    "certificate_card_file",
    "certificate_detail",
    "certificate_get",
    "certificate_list",
    "certificate_out",
    "certificates_withdraw_for_officer",
    "eligibility_check",
    "exit_bar_lift",
    "exit_bar_record",
    "number_next",
]
