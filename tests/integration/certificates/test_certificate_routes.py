"""Routes: the public verification (HTML, JSON, the scanned-code check, JWKS, photo, rate limit), the API and pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.certificates import signing
from app.certificates.models import Certificate, CertificateApplication
from app.lib import guards
from app.lib.errors import TooManyRequests
from app.lib.ratelimit import RateLimiter
from tests.factories import World
from tests.integration.certificates.conftest import make_eligible
from tests.integration.conftest import Client

JSON = {"accept": "application/json"}


async def _issue_via_api(client: Client, db: AsyncSession, world: World) -> dict[str, Any]:
    """admin_a applies for officer_a, sfj_admin approves: the issued card as the API returns it."""
    await make_eligible(db, world.officer_a, year=_last_year())
    await client.login("admin_a")
    r = await client.post("/api/certificates/applications", json={"officer_ids": [world.officer_a.id]})
    assert r.status_code == 201, r.text
    app_id = r.json()["applications"][0]["id"]
    await client.raw.post("/api/auth/logout", headers={"x-csrftoken": await client.csrf()})
    client.raw.cookies.clear()
    await client.login("sfj_admin")
    r = await client.post(
        "/api/certificates/applications/decide", json={"application_ids": [app_id], "approve": True}
    )
    assert r.status_code == 200, r.text
    cert_id = r.json()[0]["certificate_id"]
    r = await client.get(f"/api/certificates/{cert_id}")
    assert r.status_code == 200, r.text
    return dict(r.json()["certificate"])


def _last_year() -> int:
    from app.lib.clock import today

    return today().year - 1


async def test_issue_then_public_page_json_and_check(client: Client, db: AsyncSession, world: World) -> None:
    cert = await _issue_via_api(client, db, world)
    number, qr_text = cert["number"], cert["qr_text"]
    fragment = qr_text.split("#", 1)[1]
    client.raw.cookies.clear()  # the public is not logged in

    r = await client.get(f"/v/{number}", headers={"accept": "text/html"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    html = r.text
    assert "有效" in html and "李明" in html and "甲市市场监督管理局" in html and "市场监管" in html
    assert world.officer_a.id_number not in html and world.officer_a.id_number[:6] + "19" not in html
    assert '<script src="/static/js/verify.js?v=' in html and "<script>" not in html

    r = await client.get(f"/v/{number}", headers=JSON)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["status"] == "valid" and body["status_label"] == "有效" and body["name"] == "李明"
    assert "id_number" not in body and "officer_id" not in body and "id" not in body

    # The scanned code: genuine, then one character altered.
    r = await client.raw.post("/api/public/certificates/check", json={"number": number, "fragment": fragment})
    assert r.status_code == 200, r.text  # no CSRF token needed: a public, read-only check
    assert r.json()["match"] is True and r.json()["status_label"] == "有效"
    flipped = fragment[:-5] + ("A" if fragment[-5] != "A" else "B") + fragment[-4:]
    r = await client.raw.post("/api/public/certificates/check", json={"number": number, "fragment": flipped})
    assert r.json()["match"] is False and r.json()["status_label"] == "无法验证"
    assert "篡改" in r.json()["message"]
    r = await client.raw.post(
        "/api/public/certificates/check", json={"number": "NOPE1", "fragment": fragment}
    )
    assert r.json()["match"] is False and r.json()["status_label"] == "无法验证"

    # JWKS: the offline verifier accepts the card with nothing but the published keys.
    r = await client.get("/.well-known/jwks.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/jwk-set+json")
    jwks = r.json()
    assert [k["kty"] for k in jwks["keys"]] == ["OKP"] and "d" not in jwks["keys"][0]
    from app.lib.clock import today

    assert signing.verify_payload(qr_text, jwks, now=today()).ok
    assert not signing.verify_payload(qr_text.replace("#", "#A", 1), jwks, now=today()).ok


async def test_public_page_shows_live_status(client: Client, db: AsyncSession, world: World) -> None:
    cert = await _issue_via_api(client, db, world)
    r = await client.post(
        f"/api/certificates/{cert['id']}/actions",
        json={
            "action": "suspend",
            "ground": "年度考核不称职",
            "evidence": "考核结果通知",
            "version": cert["version"],
        },
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "suspended"
    r = await client.post(
        f"/api/certificates/{cert['id']}/actions", json={"action": "declare_lost", "ground": "x"}
    )
    assert r.status_code == 409 and "暂扣期间" in r.json()["detail"]
    client.raw.cookies.clear()
    r = await client.get(f"/v/{cert['number']}", headers={"accept": "text/html"})
    assert "暂扣" in r.text and "s-suspended" in r.text
    r = await client.get(f"/v/{cert['number']}", headers=JSON)
    assert r.json()["status_label"] == "暂扣"


async def test_unknown_and_malformed_numbers(client: Client, world: World) -> None:
    r = await client.get("/v/NOSUCH123", headers={"accept": "text/html"})
    assert r.status_code == 404 and "无法验证" in r.text
    r = await client.get("/v/NOSUCH123", headers=JSON)
    assert r.status_code == 404 and r.json()["status"] == 404
    r = await client.get("/v/NOSUCH123", headers={"accept": "*/*"})
    assert r.status_code == 404 and r.headers["content-type"].startswith("application/problem+json")
    r = await client.get("/v/%3Cscript%3E", headers={"accept": "text/html"})
    assert r.status_code == 404 and "<script>" not in r.text
    r = await client.get("/v", params={"number": "a2024000001"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/v/A2024000001"
    r = await client.get("/v", params={"number": "证号"})
    assert r.status_code == 400 and "只能包含" in r.text


async def test_lookups_are_rate_limited(app: Litestar, client: Client, world: World) -> None:
    app.state.verify_limiter = RateLimiter("verify", limit=3, window_seconds=60)
    for _ in range(3):
        assert (await client.get("/v/A2024000001", headers=JSON)).status_code == 200
    r = await client.get("/v/A2024000002", headers=JSON)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    r = await client.raw.post(
        "/api/public/certificates/check", json={"number": "A2024000001", "fragment": "x"}
    )
    assert r.status_code == 429
    assert isinstance(TooManyRequests("x", retry_after=1), Exception)


async def test_photo_only_through_a_certificate(
    client: Client, db: AsyncSession, world: World, tmp_path: Any
) -> None:
    r = await client.get("/v/A2024000001/photo")
    assert r.status_code == 404  # no photo uploaded
    r = await client.get("/v/NOSUCH/photo")
    assert r.status_code == 404


async def test_apply_refused_names_each_officer(client: Client, db: AsyncSession, world: World) -> None:
    await client.login("admin_a")
    r = await client.post("/api/certificates/applications", json={"officer_ids": [world.officer_a.id]})
    assert r.status_code == 422
    errors = r.json()["errors"]
    assert errors[0]["field"] == f"officer:{world.officer_a.id}"
    assert "李明" in errors[0]["message"] and "执法资格考试" in errors[0]["message"]
    assert (await db.scalar(select(CertificateApplication.id))) is None
    r = await client.post(
        "/api/certificates/applications/eligibility", json={"officer_ids": [world.officer_a.id]}
    )
    assert r.status_code == 200 and r.json()[0]["eligible"] is False


async def test_pages_apply_approve_act_and_download(client: Client, db: AsyncSession, world: World) -> None:
    await make_eligible(db, world.officer_a, year=_last_year())
    await client.login("admin_a")
    r = await client.get("/certificates/apply", headers={"accept": "text/html"})
    assert r.status_code == 200 and "符合条件" in r.text
    r = await client.form(
        "/certificates/apply",
        {"kind": "enforcement", "officer_ids": [str(world.officer_a.id)]},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    client.raw.cookies.clear()
    await client.login("sfj_admin")
    r = await client.get("/certificates/applications?status=pending", headers={"accept": "text/html"})
    m = re.search(r'name="application_ids" value="(\d+)"', r.text)
    assert m, r.text
    r = await client.form(
        "/certificates/applications/decide", {"application_ids": m.group(1), "decision": "reject"}
    )
    assert r.status_code == 400 and "驳回申领须填写理由" in r.text
    r = await client.form(
        "/certificates/applications/decide",
        {"application_ids": m.group(1), "decision": "approve"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    cert = await db.scalar(select(Certificate).where(Certificate.kind == "enforcement"))
    assert cert is not None
    r = await client.get(f"/certificates/{cert.id}", headers={"accept": "text/html"})
    assert r.status_code == 200 and cert.number in r.text and "状态变更" in r.text
    r = await client.form(
        f"/certificates/{cert.id}/action", {"action": "revoke", "ground": "", "version": "1"}
    )
    assert r.status_code == 400 and "变更依据" in r.text
    r = await client.form(
        f"/certificates/{cert.id}/action",
        {
            "action": "revoke",
            "ground": "以欺骗手段取得",
            "evidence": "调查报告",
            "version": str(cert.version),
        },
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    r = await client.get(f"/api/certificates/{cert.id}/card/png")
    assert r.status_code == 200 and r.content[:8] == b"\x89PNG\r\n\x1a\n"
    r = await client.get(f"/api/certificates/{cert.id}/card/pdf")
    assert r.status_code == 200 and r.content[:5] == b"%PDF-"
    r = await client.get(f"/api/certificates/{cert.id}/card/gif")
    assert r.status_code == 404


async def test_officer_sees_only_own_cards(client: Client, world: World) -> None:
    await client.login("officer_a")
    r = await client.get("/api/certificates")
    assert r.status_code == 200
    assert [c["number"] for c in r.json()["items"]] == ["A2024000001"]
    r = await client.get(f"/api/certificates/{world.cert_b.id}")
    assert r.status_code == 404
    r = await client.get("/certificates", headers={"accept": "text/html"})
    assert r.status_code == 200 and "我的证件" in r.text


async def test_an_older_code_of_a_renewed_card_no_longer_matches(
    client: Client, db: AsyncSession, world: World
) -> None:
    import datetime as dt

    from app.certificates.rules import CertificateAction
    from app.certificates.schemas import ActionIn
    from app.certificates.services.issuance import IssueContext
    from app.certificates.services.status import certificate_act
    from tests.integration.certificates.conftest import BASE, SECRET, principal

    cert = await _issue_via_api(client, db, world)
    old_fragment = cert["qr_text"].split("#", 1)[1]
    renew_on = dt.date.fromisoformat(cert["valid_until"]) - dt.timedelta(days=30)
    await make_eligible(db, world.officer_a, year=renew_on.year - 1)
    from app.exams.models import ExamQualification

    db.add(
        ExamQualification(
            officer_id=world.officer_a.id,
            passed_on=renew_on - dt.timedelta(days=100),
            valid_until=renew_on + dt.timedelta(days=1000),
            source="legacy",
        )
    )
    await db.commit()
    await certificate_act(
        db,
        principal=principal(world.authority, world.province),
        certificate_id=cert["id"],
        data=ActionIn(action=CertificateAction.RENEW, ground="换发"),
        ctx=IssueContext(secret_key=SECRET, base_url=BASE),
        on=renew_on,
    )
    await db.commit()  # the request's edge commits; here the test is the edge
    r = await client.raw.post(
        "/api/public/certificates/check", json={"number": cert["number"], "fragment": old_fragment}
    )
    assert r.json()["match"] is False and "较早签发" in r.json()["message"]


async def test_public_routes_set_no_cookie_and_read_no_session(
    client: Client, db: AsyncSession, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The public router has no session, principal or CSRF middleware: whatever the visitor sends,
    a scan, its JSON, the check, the keys, the register, the health and the static files answer
    without a Set-Cookie and as to nobody (no ``no-store`` for a logged-in account)."""
    cert = await _issue_via_api(client, db, world)  # logged in as sfj_admin: session and CSRF cookies
    number, fragment = cert["number"], cert["qr_text"].split("#", 1)[1]
    assert client.raw.cookies.get("zf_session") and client.raw.cookies.get("zf_csrf")
    answers = [
        await client.get(f"/v/{number}", headers={"accept": "text/html"}),
        await client.get(f"/v/{number}", headers=JSON),
        await client.get("/v/NOPE-1", headers={"accept": "text/html"}),
        await client.get("/v", headers={"accept": "text/html"}),
        await client.raw.post(
            "/api/public/certificates/check", json={"number": number, "fragment": fragment}
        ),
        await client.get("/.well-known/jwks.json"),
        await client.get("/register", headers={"accept": "text/html"}),
        await client.get("/api/register", headers=JSON),
        await client.get("/health"),
        await client.get("/static/js/verify.js"),
    ]
    for r in answers:
        assert r.status_code < 500, (r.url, r.status_code)
        assert "set-cookie" not in r.headers, (r.url, r.headers.get("set-cookie"))
        assert r.headers["x-content-type-options"] == "nosniff", r.url
    page = answers[0].text
    assert "退出" not in page  # rendered as to nobody, though the visitor's browser is logged in
    # Staff pages still set and check the cookies (the session's, when its renewal is due).
    monkeypatch.setattr(guards, "RENEW_AFTER_SECONDS", 0)
    r = await client.get("/certificates", headers={"accept": "text/html"})
    assert r.status_code == 200 and "set-cookie" in r.headers


@pytest.mark.parametrize(
    ("path", "form", "status", "message"),
    [
        ("action", {"action": "burn", "ground": "x"}, 400, "请选择有效的变更事项"),
        ("action", {"action": "cancel", "ground": "x", "cancel_reason": "whim"}, 400, "请选择有效的变更事项"),
        ("action", {"action": "revoke", "ground": "x", "version": "v1"}, 400, "请选择有效的变更事项"),
        ("action", {"action": "cancel", "ground": "退休"}, 400, "注销须选择注销原因"),
        ("action", {"action": "suspend", "ground": "x", "version": "99"}, 409, "已被他人修改"),
        ("reissue", {"ground": "补发"}, 409, "只有已挂失"),
    ],
)
async def test_card_page_refusals_show_the_card_again(
    client: Client, db: AsyncSession, world: World, path: str, form: dict[str, str], status: int, message: str
) -> None:
    """A refused status change or 补发 posted from the card's page: the card's page again, with the
    refusal on top and the card unchanged."""
    await client.login("sfj_admin")
    r = await client.form(f"/certificates/{world.cert_a.id}/{path}", form)
    assert r.status_code == status and message in r.text and "A2024000001" in r.text, r.text
    await db.refresh(world.cert_a)
    assert world.cert_a.status == "valid"
    assert await db.scalar(select(Certificate.id).where(Certificate.replaces_id == world.cert_a.id)) is None


async def test_card_lists_page_by_page(client: Client, world: World) -> None:
    """The province's authority sees both cards, newest first, one page at a time (JSON and page)."""
    await client.login("sfj_admin")
    r = await client.get("/api/certificates", params={"per_page": 1, "page": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["total"], body["page"], body["per_page"]) == (2, 2, 1)
    assert [c["number"] for c in body["items"]] == ["A2024000001"]
    assert (await client.get("/api/certificates", params={"per_page": 201})).status_code == 400
    assert (await client.get("/api/certificates", params={"page": 0})).status_code == 400
    r = await client.get("/api/certificates")
    assert (r.json()["page"], r.json()["per_page"]) == (1, 50)
    r = await client.get("/certificates", params={"page": 1}, headers={"accept": "text/html"})
    assert r.status_code == 200 and "A2024000001" in r.text and "B2024000001" in r.text
    r = await client.get(
        "/certificates/applications", params={"status": "pending"}, headers={"accept": "text/html"}
    )
    assert r.status_code == 200
