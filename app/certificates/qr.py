"""QR code images of certificate payloads, made once at issuance and stored, never per scan.

Error correction M (15 %: survives wear and a small smudge while keeping the version low). The
payload is pure ASCII (``signing`` base64-encodes the Chinese text), so the byte-mode content
decodes identically on every phone without a charset guess. A typical payload (~230 characters)
gives version 11 (61 × 61 modules): printed 20 mm wide with the 4-module quiet zone, a module is
about 0.29 mm — readable by phone cameras and 3–4 printer dots at 300 dpi.
"""

from __future__ import annotations

import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M

BOX_SIZE = 10
"""Pixels per module: a version-11 code is 690 px wide, ~875 dpi at 20 mm: crisp when printed."""
BORDER = 4
"""The quiet zone the standard requires, in modules."""


def _code(text: str) -> qrcode.QRCode:
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=BOX_SIZE, border=BORDER)
    code.add_data(text.encode("utf-8"), optimize=0)
    code.make(fit=True)
    return code


def qr_version(text: str) -> int:
    """The QR version (1–40) the text needs at error correction M."""
    return int(_code(text).version)


def qr_png(text: str) -> bytes:
    """A black-on-white 1-bit PNG of the QR code of ``text``."""
    image = _code(text).make_image(fill_color="black", back_color="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def read_qr(image_bytes: bytes) -> list[str]:
    """The QR texts found in an image (photo or scan), for the offline ``verify-qr IMAGE`` command.

    Uses zxing-cpp (``pip install zxing-cpp``), imported here so that issuing cards does not need it.
    """
    try:
        import zxingcpp
    except ImportError as e:
        raise RuntimeError("读取二维码图片需要安装 zxing-cpp（pip install zxing-cpp）") from e
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(image_bytes))
        image.load()
    except Exception as e:  # Pillow raises many types for a bad file
        raise ValueError("图片无法读取，请提供 PNG 或 JPEG 格式的二维码图片") from e
    results = zxingcpp.read_barcodes(image.convert("L"))
    return [r.text for r in results if r.format == zxingcpp.BarcodeFormat.QRCode]
