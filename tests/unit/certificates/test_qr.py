"""QR images, read back with a real decoder (zxing-cpp), then checked by the offline verifier."""

from __future__ import annotations

import datetime as dt
import io

import pytest
import zxingcpp  # dev extra: a real QR decoder
from PIL import Image

from app.certificates import signing
from app.certificates.qr import qr_png, qr_version, read_qr
from app.certificates.rules import CertificateKind
from app.certificates.signing import CardFields, PublishedKey

D = dt.date
BASE = "https://zfz.sft.gd.gov.cn"


def decode(png: bytes) -> list[str]:
    image = Image.open(io.BytesIO(png)).convert("L")
    return [r.text for r in zxingcpp.read_barcodes(image) if r.format == zxingcpp.BarcodeFormat.QRCode]


@pytest.fixture(scope="module")
def key():
    return signing.generate_key()


@pytest.mark.parametrize(
    "name,agency,max_version",
    [
        ("张三", "广州市市场监督管理局", 11),
        ("欧阳娜娜", "广东省广州市天河区城市管理和综合执法局", 13),
        ("买买提·艾力", "新疆维吾尔自治区乌鲁木齐市沙依巴克区市场监督管理局综合行政执法大队", 15),
    ],
)
def test_qr_round_trip_through_a_real_decoder(key, name, agency, max_version) -> None:
    kid, pem, jwk = key
    fields = CardFields(
        "4401002026000123", name, agency, D(2026, 3, 1), D(2031, 2, 28), CertificateKind.ENFORCEMENT
    )
    text = signing.sign_payload(fields, pem, kid, BASE)
    assert qr_version(text) <= max_version, (len(text), qr_version(text))

    png = qr_png(text)
    assert png.startswith(b"\x89PNG")
    assert decode(png) == [text]

    result = signing.verify_payload(
        decode(png)[0], signing.jwks_document([PublishedKey.from_jwk(jwk)]), now=D(2027, 1, 1)
    )
    assert result.ok and result.fields == fields


def test_a_damaged_code_still_reads_at_level_m(key) -> None:
    kid, pem, _ = key
    fields = CardFields(
        "4401002026000123",
        "张三",
        "广州市市场监督管理局",
        D(2026, 3, 1),
        D(2031, 2, 28),
        CertificateKind.ENFORCEMENT,
    )
    text = signing.sign_payload(fields, pem, kid, BASE)
    image = Image.open(io.BytesIO(qr_png(text))).convert("L")
    w = image.width
    image.paste(255, (w // 2 - w // 20, w // 2 - w // 20, w // 2 + w // 20, w // 2 + w // 20))  # a smudge
    smudged = io.BytesIO()
    image.save(smudged, format="PNG")
    # QR codes only, as the app reads them (read_qr): in a smudged image zxing now and then also
    # "finds" a short code of another format in the noise (seen: 'D90A'), depending on the key.
    assert decode(smudged.getvalue()) == [text]


def test_read_qr_finds_the_payload_in_an_image(key) -> None:
    kid, pem, _ = key
    fields = CardFields(
        "4401002026000123",
        "张三",
        "广州市市场监督管理局",
        D(2026, 3, 1),
        D(2031, 2, 28),
        CertificateKind.ENFORCEMENT,
    )
    text = signing.sign_payload(fields, pem, kid, BASE)
    # A "photo": the code small on a larger grey background, saved as JPEG.
    sheet = Image.new("RGB", (1200, 900), (200, 200, 200))
    sheet.paste(Image.open(io.BytesIO(qr_png(text))).convert("RGB").resize((400, 400)), (500, 300))
    out = io.BytesIO()
    sheet.save(out, "JPEG", quality=85)
    assert read_qr(out.getvalue()) == [text]
    assert read_qr(qr_png("not a card")) == ["not a card"]


def test_read_qr_refuses_a_file_that_is_not_an_image() -> None:
    with pytest.raises(ValueError, match="图片无法读取"):
        read_qr(b"%PDF-1.4")
