"""Use cases of the accounts domain, one module per use case; reads are in ``app.accounts.selectors``.

Each use case runs in its caller's transaction (the request's edge, a console command's session):
load, apply the rules, write, audit; none commits. Every function that takes a ``principal`` scopes
what it reads and writes to the principal's agency subtree; an object outside it is reported as
not found, so its existence is not revealed.

The names below were all importable from ``app.accounts.services`` when it was one module; other
domains still import them from here.
"""

from __future__ import annotations

from app.accounts.selectors import (
    OfficerFilter,
    account_get,
    account_list,
    account_out,
    agency_get,
    agency_out,
    agency_policies,
    agency_policy,
    agency_tree,
    officer_detail,
    officer_get,
    officer_list,
    officer_out,
)
from app.accounts.services.accounts import (
    account_create,
    account_reset_password,
    account_set_active,
    authority_admin_create,
    generate_initial_password,
)
from app.accounts.services.agencies import agency_create, agency_update
from app.accounts.services.auth import (
    AccountLocked,
    LoginFailed,
    LoginRefused,
    account_logout,
    authenticate,
    password_change,
    pwd_needs_rehash,
)
from app.accounts.services.officers import officer_create, officer_set_photo, officer_update
from app.accounts.services.postings import officer_move

__all__ = [
    "AccountLocked",
    "LoginFailed",
    "LoginRefused",
    "OfficerFilter",
    "account_create",
    "account_get",
    "account_list",
    "account_logout",
    "account_out",
    "account_reset_password",
    "account_set_active",
    "agency_create",
    "agency_get",
    "agency_out",
    "agency_policies",
    "agency_policy",
    "agency_tree",
    "agency_update",
    "authenticate",
    "authority_admin_create",
    "generate_initial_password",
    "officer_create",
    "officer_detail",
    "officer_get",
    "officer_list",
    "officer_move",
    "officer_out",
    "officer_set_photo",
    "officer_update",
    "password_change",
    "pwd_needs_rehash",
]
