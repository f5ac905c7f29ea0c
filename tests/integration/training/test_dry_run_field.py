"""``dry_run`` is honoured wherever the client puts it, or refused; never silently ignored.

The three sheet imports document it as a query parameter; clients also send it as a form field
beside the file. A ``dry_run=false`` in the form used to run as a check while the client believed
it had imported.
"""

from __future__ import annotations

from typing import Any

import pytest

from app.training.models import TrainingRecord
from tests.factories import World
from tests.integration.conftest import Client
from tests.integration.training.conftest import YEAR, api_course, count, make_csv

# (query dry_run, form dry_run) → "check" | "import" | a 400 naming the field
CASES = [
    (None, None, "check"),
    ("true", None, "check"),
    ("false", None, "import"),
    (None, "true", "check"),
    (None, "false", "import"),
    (None, "0", "import"),
    (None, "on", "check"),
    ("false", "false", "import"),
    ("true", "true", "check"),
    ("true", "false", 400),
    ("false", "true", 400),
    (None, "maybe", 400),
    (None, "", 400),
]


async def _post(
    client: Client, url: str, body: bytes, query: str | None, form: str | None, **params: Any
) -> Any:
    if query is not None:
        params["dry_run"] = query
    return await client.post(
        url,
        params=params,
        data={} if form is None else {"dry_run": form},
        files={"file": ("sheet.csv", body, "text/csv")},
        headers={"accept": "application/json"},
    )


@pytest.mark.parametrize(("query", "form", "outcome"), CASES)
async def test_attendance_import_honours_or_refuses_dry_run(
    client: Client, db: Any, world: World, query: str | None, form: str | None, outcome: Any
) -> None:
    await client.login("admin_a")
    course = await api_course(client)
    body = make_csv([["", world.officer_a.id_number, course["id"], "", f"{YEAR}-03-10", "2"]])
    before = await count(db, TrainingRecord)

    r = await _post(client, "/api/training/import", body, query, form, year=YEAR)

    if outcome == 400:
        assert r.status_code == 400, r.text
        assert r.json()["errors"][0]["field"] == "dry_run"
        assert await count(db, TrainingRecord) == before
        return
    assert r.status_code == 200, r.text
    assert r.json()["dry_run"] is (outcome == "check")
    assert await count(db, TrainingRecord) == before + (outcome == "import")


@pytest.mark.parametrize("url", ["/api/officers/import", "/api/assessments/ratings/import"])
@pytest.mark.parametrize(("query", "form"), [(None, "maybe"), ("true", "false")])
async def test_the_other_imports_refuse_a_dry_run_they_cannot_honour(
    client: Client, world: World, url: str, query: str | None, form: str
) -> None:
    await client.login("admin_a")
    r = await _post(client, url, b"\xef\xbb\xbf\xe5\xa7\x93\xe5\x90\x8d\r\n", query, form)
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0]["field"] == "dry_run"
