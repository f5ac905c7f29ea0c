"""API fuzzing: schemathesis drives every JSON operation in ``/schema/openapi.json`` with generated input,
once per role, against a real server on its own demo database.

What must hold for every generated request: no 5xx, and every response matches what the schema says
(status code documented or a problem+json error, content type, body shape). The example count per
operation is bounded (``FUZZ_EXAMPLES``, 15 by default) so the run fits in CI; raise it locally to dig.

Operations that end the fuzzing session itself (logout, password change, deactivating or resetting an
account, which may be the caller's own) are left out of the authenticated runs; their refusals and
effects are covered by the integration tests of accounts.

Left out on purpose: schemathesis' "schema-valid request rejected" check. Our request structs refuse
unknown fields and some rules are not expressible in JSON Schema (a department needs a parent agency),
so a 400 with the field and the reason is the right answer there, not a defect.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.e2e.conftest import Server, running_server

pytestmark = pytest.mark.e2e  # a real server and many requests: the slow step (make test-slow)

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "15"))

# The documented demo logins (app/accounts/demo.py), one per role.
ROLES: dict[str, tuple[str, str] | None] = {
    "anonymous": None,
    "officer": ("zhifa01", "Demo-2026-officer"),
    "agency_admin": ("shi_admin", "Demo-2026-city"),
    "authority": ("sfj_admin", "Demo-2026-admin"),
}

# Calls that would end, replace or lock the session doing the fuzzing (see the module docstring).
SESSION_ENDING = re.compile(
    r"^/api/auth/(login|logout|password)|^/api/accounts/\{account_id\}/(deactivate|reset-password)"
)


@dataclass
class Caller:
    role: str
    http: requests.Session
    headers: dict[str, str]


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own: fuzzing writes garbage that the browser journeys must not meet."""
    with running_server(tmp_path_factory.mktemp("fuzz"), officers=60) as srv:
        yield srv


@pytest.fixture(scope="module")
def api_schema(fuzz_server: Server) -> schemathesis.Schema:
    return schemathesis.openapi.from_url(f"{fuzz_server.base_url}/schema/openapi.json")


def _login(server: Server, role: str) -> Caller:
    http = requests.Session()
    # The CSRF cookie comes with any page; unsafe requests echo it in the header.
    http.get(f"{server.base_url}/login", timeout=10)
    headers = {"x-csrftoken": http.cookies.get("zf_csrf") or ""}
    login = ROLES[role]
    if login is not None:
        resp = http.post(
            f"{server.base_url}/api/auth/login",
            json={"username": login[0], "password": login[1]},
            headers=headers,
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["username"] == login[0], resp.text
    return Caller(role=role, http=http, headers=headers)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _check(case: schemathesis.Case, caller: Caller) -> None:
    response = case.call(session=caller.http, headers=dict(caller.headers), timeout=30)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} as {caller.role} -> {response.status_code}: {response.text[:500]}"
    )
    case.validate_response(response, excluded_checks=[positive_data_acceptance])


@pytest.mark.parametrize("role", list(ROLES))
def test_every_operation_answers_within_its_schema(
    api_schema: schemathesis.Schema, fuzz_server: Server, role: str
) -> None:
    caller = _login(fuzz_server, role)
    failures: list[str] = []
    operations = 0
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if role != "anonymous" and SESSION_ENDING.search(operation.path):
            continue
        operations += 1

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: schemathesis.Case) -> None:
            _check(case, caller)

        try:
            run()
        except Exception as exc:  # every operation is fuzzed; the failures are reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:1500]}")
    assert operations > 10, "the schema lists suspiciously few operations"
    if failures:
        log = fuzz_server.log.read_text(errors="replace")
        tracebacks = (
            log[log.find("Traceback") :][-6000:] if "Traceback" in log else "(no traceback in the log)"
        )
        pytest.fail(
            f"{len(failures)} of {operations} operations failed as {role}:\n\n"
            + "\n\n".join(failures)
            + f"\n\nserver log (last tracebacks):\n{tracebacks}"
        )
