"""Card rendering: two ID-1 pages, an embedded CJK font, and a QR that a real decoder reads back."""

from __future__ import annotations

import datetime as dt
import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pypdf  # dev extra
import pytest
import zxingcpp  # dev extra: a real QR decoder
from PIL import Image, ImageDraw

from app.certificates import card, signing
from app.certificates.card import CardData, CardFontMissing
from app.certificates.qr import qr_png
from app.certificates.rules import CertificateKind
from app.certificates.signing import CardFields, PublishedKey

try:
    card.find_font()
except CardFontMissing:
    pytest.fail(
        "no TrueType CJK font: run the tests with `make test`, which installs fonts-wqy-zenhei", pytrace=False
    )

D = dt.date
BASE = "https://zfz.sft.gd.gov.cn"
ID1_POINTS = (85.6 / 25.4 * 72, 54 / 25.4 * 72)


@pytest.fixture(scope="module")
def key():
    return signing.generate_key()


def make(kind: CertificateKind, agency: str, key) -> tuple[CardData, str]:
    kid, pem, _ = key
    fields = CardFields("4401002026000123", "欧阳娜娜", agency, D(2026, 3, 1), D(2031, 2, 28), kind)
    text = signing.sign_payload(fields, pem, kid, BASE)
    data = CardData(
        kind,
        fields.number,
        fields.name,
        agency,
        "城市管理综合行政执法",
        "广州市天河区",
        fields.valid_from,
        fields.valid_until,
        "广州市人民政府",
    )
    return data, text


def photo() -> bytes:
    image = Image.new("RGB", (413, 579), (120, 150, 200))
    ImageDraw.Draw(image).ellipse((100, 120, 310, 400), fill=(230, 200, 170))
    out = io.BytesIO()
    image.save(out, "JPEG")
    return out.getvalue()


def qr_texts(image: Image.Image) -> list[str]:
    return [
        r.text
        for r in zxingcpp.read_barcodes(image.convert("L"))
        if r.format == zxingcpp.BarcodeFormat.QRCode
    ]


CASES = [
    (CertificateKind.ENFORCEMENT, "广州市市场监督管理局", True),
    (
        CertificateKind.SUPERVISION,
        "新疆维吾尔自治区乌鲁木齐市沙依巴克区市场监督管理局综合行政执法大队",
        False,
    ),
]


@pytest.mark.parametrize("kind,agency,with_photo", CASES)
def test_pdf_has_two_id1_pages_and_an_embedded_font(key, kind, agency, with_photo) -> None:
    data, text = make(kind, agency, key)
    pdf = card.render_card_pdf(data, photo() if with_photo else None, qr_png(text))
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 2
    for page in reader.pages:
        box = page.mediabox
        assert float(box.width) == pytest.approx(ID1_POINTS[0], abs=0.01)
        assert float(box.height) == pytest.approx(ID1_POINTS[1], abs=0.01)
    assert b"/FontFile2" in pdf  # TrueType outlines embedded, not merely referenced
    front = reader.pages[0].extract_text()
    assert kind.label[:4] in front.replace(" ", "").replace("\u3000", "")
    assert len(pdf) < 300_000  # the font is subset, not the whole 17 MB file


@pytest.mark.parametrize("kind,agency,with_photo", CASES)
def test_pdf_rendered_by_poppler_gives_back_the_qr(key, kind, agency, with_photo) -> None:
    data, text = make(kind, agency, key)
    pdf = card.render_card_pdf(data, photo() if with_photo else None, qr_png(text))
    if shutil.which("pdftoppm") is None:
        print("SKIPPED assertion: pdftoppm not installed (apt-get install poppler-utils)")
        pytest.fail("pdftoppm not installed: run the tests with `make test`, which installs poppler-utils")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "card.pdf").write_bytes(pdf)
        subprocess.run(
            ["pdftoppm", "-r", "300", "-f", "2", "-l", "2", "-png", "card.pdf", "back"],  # noqa: S607
            cwd=tmp,
            check=True,
            timeout=60,
        )
        (png,) = Path(tmp).glob("back*.png")
        back = Image.open(png)
        back.load()
    assert back.size[0] == pytest.approx(85.6 / 25.4 * 300, abs=1)  # poppler rounds up
    assert back.size[1] == pytest.approx(54 / 25.4 * 300, abs=1)
    decoded = qr_texts(back)
    assert decoded == [text]
    jwks = signing.jwks_document([PublishedKey.from_jwk(key[2])])
    assert signing.verify_payload(decoded[0], jwks, now=D(2027, 1, 1)).ok


@pytest.mark.parametrize("dpi", [300, 200])
def test_png_preview_shows_both_sides_and_a_readable_qr(key, dpi) -> None:
    data, text = make(CertificateKind.ENFORCEMENT, "广州市市场监督管理局", key)
    png = card.render_card_png(data, photo(), qr_png(text), dpi=dpi)
    image = Image.open(io.BytesIO(png))
    w, h = round(85.6 / 25.4 * dpi), round(54 / 25.4 * dpi)
    assert image.size == (w, 2 * h + round(4 / 25.4 * dpi))
    assert image.getpixel((w // 2, 5)) == card.RED  # the red band of the front
    assert qr_texts(image) == [text]


def test_png_preview_of_one_side(key) -> None:
    data, text = make(CertificateKind.ENFORCEMENT, "广州市市场监督管理局", key)
    front = Image.open(io.BytesIO(card.render_card_png(data, None, qr_png(text), side="front")))
    back = Image.open(io.BytesIO(card.render_card_png(data, None, qr_png(text), side="back")))
    assert front.size == back.size == (round(85.6 / 25.4 * 300), round(54 / 25.4 * 300))
    assert qr_texts(front) == [] and qr_texts(back) == [text]


def test_a_missing_font_is_a_clear_error(key) -> None:
    data, text = make(CertificateKind.ENFORCEMENT, "广州市市场监督管理局", key)
    with pytest.raises(CardFontMissing, match="字体文件不存在"):
        card.render_card_pdf(data, None, qr_png(text), font_path="/nonexistent/font.ttf")


def test_an_unreadable_photo_is_refused(key) -> None:
    data, text = make(CertificateKind.ENFORCEMENT, "广州市市场监督管理局", key)
    with pytest.raises(ValueError, match="照片无法读取"):
        card.render_card_pdf(data, b"not a jpeg", qr_png(text))
