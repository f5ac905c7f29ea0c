"""The public verification page on a phone, as a citizen scanning a card would see it: valid, suspended, forged."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, shot

pytestmark = pytest.mark.e2e


def _card(server: Server, status: str) -> tuple[str, str, str]:
    """(number, holder name, path + fragment of its QR) of a demo card stored in ``status`` and in date."""
    rows = server.query(
        "SELECT number, holder_name, qr_text FROM certificates WHERE status = ? AND valid_until >= date('now') "
        "AND replaces_id IS NULL ORDER BY id LIMIT 1",
        status,
    )
    assert rows, f"demo data has no {status} card"
    number, name, qr_text = (str(v) for v in rows[0])
    parts = urlsplit(qr_text)
    return number, name, f"{parts.path}#{parts.fragment}"


def test_valid_card_scanned(phone: Page, server: Server) -> None:
    number, name, target = _card(server, "valid")
    phone.goto(target)
    expect(phone.locator("#status-word")).to_have_text("有效")
    expect(phone.locator("#qr-check")).to_contain_text("二维码核验通过")
    expect(phone.locator(".v-name")).to_have_text(name)
    expect(phone.locator(".v-number")).to_have_text(number)
    # Large type: the status word is the biggest thing on the page, and it fits the phone's width.
    size = phone.locator("#status-word").evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 40
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    body = phone.locator("body").inner_text()
    assert "身份证" not in body and not any(len(w) == 18 and w[:17].isdigit() for w in body.split())
    shot(phone, "public-verification-valid-phone")


def test_suspended_card_scanned(phone: Page, server: Server) -> None:
    _number, _name, target = _card(server, "suspended")
    phone.goto(target)
    expect(phone.locator("#status-word")).to_have_text("暂扣")
    expect(phone.locator("#status")).to_have_class("v-status s-suspended")
    expect(phone.locator("#qr-check")).to_contain_text("二维码核验通过")
    shot(phone, "public-verification-suspended-phone")


def test_forged_code_reads_unverifiable(phone: Page, server: Server) -> None:
    _number, _name, target = _card(server, "valid")
    path, fragment = target.split("#", 1)
    body, sig = fragment.split(".", 1)
    i = len(body) // 2
    forged = body[:i] + ("A" if body[i] != "A" else "B") + body[i + 1 :]  # e.g. a name or date changed
    phone.goto(f"{path}#{forged}.{sig}")
    expect(phone.locator("#status-word")).to_have_text("无法验证")
    expect(phone.locator("#status")).to_have_class("v-status s-unverifiable")
    expect(phone.locator("#qr-check")).to_contain_text("二维码与证件不符")
    shot(phone, "public-verification-forged-phone")


def test_lookup_by_number_without_a_code(phone: Page, server: Server) -> None:
    number, _name, _target = _card(server, "valid")
    phone.goto("/v")
    phone.get_by_label("输入证件上的证号").fill(number)
    phone.get_by_role("button", name="查询").click()
    expect(phone.locator("#status-word")).to_have_text("有效")
    expect(phone.locator("#qr-check")).to_be_hidden()  # no code scanned: only the live status
    phone.goto("/v/NOSUCH0001")
    expect(phone.locator(".v-status-word")).to_have_text("无法验证")
