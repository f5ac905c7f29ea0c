"""Print-ready certificate cards: a two-page PDF (front, back) at ID-card size, and a PNG preview.

ID-1 size, 85.6 × 54 mm, in the national red-and-white style without the national emblem: a red
band with the plain title 行政执法证 / 行政执法监督证, photo and particulars on the front (name, agency,
number, enforcement field and area, validity, issuing authority), holder's notes and the QR code on
the back. The layout is one list of drawing operations in millimetres, drawn by two backends —
reportlab for the PDF, Pillow for the preview — so both show the same card.

Font: reportlab embeds TrueType outlines only (not CFF/OTF such as Noto CJK), so the card uses
WenQuanYi Zen Hei (Debian ``fonts-wqy-zenhei``, a TTC with TrueType outlines, subfont 0), embedded
as a subset: the PDF is self-contained and nothing is downloaded at run time. Other TrueType CJK
fonts are tried in turn (``FONT_CANDIDATES``); a missing font is a clear error, never tofu boxes.

Rendering is CPU work: call these from a worker thread (``anyio.to_thread.run_sync``), not on the
event loop. The QR PNG is made once at issuance (``qr.qr_png``) and passed in.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import msgspec
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from app.certificates.rules import CertificateKind

WIDTH_MM, HEIGHT_MM = 85.6, 54.0
RED = (200, 16, 46)
BLACK = (20, 20, 20)
GREY = (90, 90, 90)
WHITE = (255, 255, 255)
PT_TO_MM = 25.4 / 72

FONT_CANDIDATES: tuple[tuple[str, int], ...] = (
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),  # fonts-wqy-zenhei
    ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", 0),  # fonts-wqy-microhei
    ("/usr/share/fonts/truetype/arphic/uming.ttc", 0),  # fonts-arphic-uming
    ("/usr/share/fonts/truetype/arphic/ukai.ttc", 0),  # fonts-arphic-ukai
)
FONT_NAME = "CardCJK"

NOTES = (
    "本证是行政执法人员依法从事行政执法活动的身份证明，执法时应当主动出示。",
    "本证限持证人本人使用，不得转借、涂改、损毁。",
    "本证遗失的，应当及时向发证机关报告并申请补发。",
    "扫描二维码可核验本证真伪并查询证件当前状态。",
)


class CardFontMissing(RuntimeError):
    """No TrueType CJK font installed: the card cannot be rendered legibly."""


class CardData(msgspec.Struct, frozen=True):
    """What the card shows — exactly what the public page may show; never the ID number."""

    kind: CertificateKind
    number: str
    name: str
    agency: str
    field: str
    """执法领域 / 执法类别, e.g. 市场监管."""
    area: str
    """执法区域, e.g. 广州市天河区."""
    valid_from: dt.date
    valid_until: dt.date
    issuing_authority: str


# ---------------------------------------------------------------- font


@dataclass(frozen=True)
class _Font:
    path: str
    index: int


_registered: dict[tuple[str, int], str] = {}


def find_font(path: str | None = None, index: int = 0) -> _Font:
    if path is not None:
        if not Path(path).is_file():
            raise CardFontMissing(f"证件字体文件不存在：{path}")
        return _Font(path, index)
    for candidate, idx in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return _Font(candidate, idx)
    raise CardFontMissing(
        "未找到可嵌入的中文 TrueType 字体，无法生成证件。请安装 fonts-wqy-zenhei（apt-get install fonts-wqy-zenhei）。"
    )


def _pdf_font(font: _Font) -> str:
    key = (font.path, font.index)
    if key not in _registered:
        name = FONT_NAME if not _registered else f"{FONT_NAME}{len(_registered)}"
        pdfmetrics.registerFont(TTFont(name, font.path, subfontIndex=font.index))
        _registered[key] = name
    return _registered[key]


# ---------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Rect:
    x: float
    y: float
    w: float
    h: float
    fill: tuple[int, int, int] | None
    stroke: tuple[int, int, int] | None = None
    line: float = 0.2


@dataclass(frozen=True)
class _Text:
    x: float
    y: float
    """Baseline, mm from the top."""
    text: str
    size: float
    """Points."""
    color: tuple[int, int, int] = BLACK
    align: Literal["left", "center", "right"] = "left"
    heavy: bool = False


@dataclass(frozen=True)
class _Image:
    x: float
    y: float
    w: float
    h: float
    data: bytes
    crisp: bool = False
    """QR codes: scale by nearest neighbour, never blur."""


_Op = _Rect | _Text | _Image


def _width_mm(text: str, size: float, font_name: str) -> float:
    return float(pdfmetrics.stringWidth(text, font_name, size)) * PT_TO_MM


def _wrap(text: str, size: float, width: float, font_name: str) -> list[str]:
    lines, line = [], ""
    for ch in text:
        if line and _width_mm(line + ch, size, font_name) > width:
            lines.append(line)
            line = ""
        line += ch
    return [*lines, line] if line else lines


def _fit(
    text: str,
    x: float,
    y: float,
    width: float,
    size: float,
    font_name: str,
    *,
    lines: int = 1,
    min_size: float = 4.5,
    leading: float = 1.15,
    **kw,
) -> list[_Op]:
    """Text in ``width`` mm: shrink down to ``min_size``, then wrap onto up to ``lines`` lines."""
    while size > min_size and _width_mm(text, size, font_name) > width:
        size = round(size - 0.25, 2)
    parts = [text] if _width_mm(text, size, font_name) <= width else _wrap(text, size, width, font_name)
    if len(parts) > lines:
        while size > 3.5 and len(parts) > lines:
            size = round(size - 0.25, 2)
            parts = _wrap(text, size, width, font_name)
    step = size * PT_TO_MM * leading
    top = y - step * (len(parts) - 1) / 2 if len(parts) > 1 else y
    return [_Text(x, top + i * step, part, size, **kw) for i, part in enumerate(parts)]


def _cn_date(day: dt.date) -> str:
    return f"{day.year}年{day.month:02d}月{day.day:02d}日"


PHOTO = (4.0, 14.0, 20.0, 27.0)
QR_BOX = (61.0, 12.0, 21.0, 21.0)


def _front(card: CardData, photo: bytes | None, font: str) -> list[_Op]:
    title = CertificateKind(card.kind).label
    ops: list[_Op] = [
        _Rect(0, 0, WIDTH_MM, HEIGHT_MM, WHITE),
        _Rect(0, 0, WIDTH_MM, 11, RED),
        _Text(WIDTH_MM / 2, 8.2, "　".join(title), 13, WHITE, "center", heavy=True),
        _Rect(0, 52, WIDTH_MM, 2, RED),
    ]
    px, py, pw, ph = PHOTO
    if photo is not None:
        ops.append(_Image(px, py, pw, ph, photo))
    else:
        ops += [
            _Rect(px, py, pw, ph, (245, 245, 245), GREY),
            _Text(px + pw / 2, py + ph / 2 + 1, "照片", 7, GREY, "center"),
        ]
    label_x, value_x, right = 27.0, 38.0, WIDTH_MM - 3
    rows = (
        ("姓　　名", card.name, 1),
        ("单　　位", card.agency, 2),
        ("证　　号", card.number, 1),
        ("执法领域", card.field, 2),
        ("执法区域", card.area, 2),
    )
    for i, (label, value, lines) in enumerate(rows):
        y = 17.5 + i * 5.6
        ops.append(_Text(label_x, y, label, 6, RED))
        heavy = label.startswith("姓")
        ops += _fit(value, value_x, y, right - value_x, 7.5 if heavy else 6.5, font, lines=lines, heavy=heavy)
    ops += _fit(
        f"有效期限  {_cn_date(card.valid_from)} 至 {_cn_date(card.valid_until)}",
        4,
        45.3,
        WIDTH_MM - 8,
        6,
        font,
        color=BLACK,
    )
    ops += _fit(f"发证机关  {card.issuing_authority}", 4, 49.8, WIDTH_MM - 8, 6, font, color=BLACK)
    return ops


def _back(card: CardData, qr_png: bytes, font: str) -> list[_Op]:
    ops: list[_Op] = [
        _Rect(0, 0, WIDTH_MM, HEIGHT_MM, WHITE),
        _Rect(0, 0, WIDTH_MM, 8, RED),
        _Text(
            WIDTH_MM / 2, 5.8, f"{CertificateKind(card.kind).label}（背面）", 8, WHITE, "center", heavy=True
        ),
        _Rect(0, 52, WIDTH_MM, 2, RED),
        _Text(4, 13, "持证须知", 7, RED, heavy=True),
    ]
    y = 17.0
    for n, note in enumerate(NOTES, 1):
        for line in _wrap(f"{n}. {note}", 5.3, 54, font):
            ops.append(_Text(4, y, line, 5.3, GREY))
            y += 2.6
        y += 0.6
    qx, qy, qs, _ = QR_BOX
    ops += [
        _Image(qx, qy, qs, qs, qr_png, crisp=True),
        _Text(qx + qs / 2, qy + qs + 2.6, "扫码核验真伪", 5.5, GREY, "center"),
    ]
    ops += _fit(f"证号 {card.number}", qx + qs / 2, qy + qs + 5.6, 24, 5.5, font, color=BLACK, align="center")
    ops += _fit(f"发证机关：{card.issuing_authority}", 4, 49.3, WIDTH_MM - 8, 5.5, font, color=BLACK)
    return ops


def _prepare_photo(photo_jpeg: bytes | None) -> bytes | None:
    """Centre-crop to the photo box's proportions and cap the resolution (~600 dpi)."""
    if photo_jpeg is None:
        return None
    try:
        opened = Image.open(io.BytesIO(photo_jpeg))
        opened.load()
    except Exception as e:  # Pillow raises many types for a bad file
        raise ValueError("照片无法读取，请上传 JPEG 或 PNG 格式的证件照") from e
    image: Image.Image = opened.convert("RGB")
    _, _, pw, ph = PHOTO
    target = pw / ph
    w, h = image.size
    if w / h > target:
        cw = round(h * target)
        image = image.crop(((w - cw) // 2, 0, (w - cw) // 2 + cw, h))
    else:
        ch = round(w / target)
        image = image.crop((0, (h - ch) // 2, w, (h - ch) // 2 + ch))
    max_w = round(pw / 25.4 * 600)
    if image.width > max_w:
        image = image.resize((max_w, round(max_w / target)), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return out.getvalue()


def _pages(card: CardData, photo_jpeg: bytes | None, qr_png: bytes, font_name: str) -> list[list[_Op]]:
    return [_front(card, _prepare_photo(photo_jpeg), font_name), _back(card, qr_png, font_name)]


# ---------------------------------------------------------------- backends


def render_card_pdf(
    card: CardData,
    photo_jpeg: bytes | None,
    qr_png: bytes,
    *,
    font_path: str | None = None,
    font_index: int = 0,
) -> bytes:
    """Two pages of 85.6 × 54 mm: front, back. The CJK font is embedded (subset)."""
    font_name = _pdf_font(find_font(font_path, font_index))
    out = io.BytesIO()
    c = Canvas(out, pagesize=(WIDTH_MM * mm, HEIGHT_MM * mm), invariant=True, pageCompression=1)
    c.setTitle(f"{CertificateKind(card.kind).label} {card.number}")
    c.setAuthor(card.issuing_authority)
    for ops in _pages(card, photo_jpeg, qr_png, font_name):
        for op in ops:
            c.saveState()
            _draw_pdf(c, op, font_name)
            c.restoreState()
        c.showPage()
    c.save()
    return out.getvalue()


def _y(top_mm: float) -> float:
    return (HEIGHT_MM - top_mm) * mm


def _draw_pdf(c: Canvas, op: _Op, font_name: str) -> None:
    if isinstance(op, _Rect):
        if op.fill:
            c.setFillColorRGB(*(v / 255 for v in op.fill))
        if op.stroke:
            c.setStrokeColorRGB(*(v / 255 for v in op.stroke))
            c.setLineWidth(op.line * mm)
        c.rect(
            op.x * mm,
            _y(op.y + op.h),
            op.w * mm,
            op.h * mm,
            stroke=int(bool(op.stroke)),
            fill=int(bool(op.fill)),
        )
    elif isinstance(op, _Text):
        c.setFillColorRGB(*(v / 255 for v in op.color))
        text = c.beginText()
        text.setFont(font_name, op.size)
        # The font has no bold face: a heavy text fills and strokes the outline. The render mode is
        # graphics state in PDF (it outlives the text object), so it is set for every text.
        c.setStrokeColorRGB(*(v / 255 for v in op.color))
        c.setLineWidth(op.size * 0.03)
        text.setTextRenderMode(2 if op.heavy else 0)
        width = c.stringWidth(op.text, font_name, op.size)
        shift = {"left": 0, "center": width / 2, "right": width}[op.align]
        text.setTextOrigin(op.x * mm - shift, _y(op.y))
        text.textOut(op.text)
        c.drawText(text)
    else:
        c.drawImage(ImageReader(io.BytesIO(op.data)), op.x * mm, _y(op.y + op.h), op.w * mm, op.h * mm)


def render_card_png(
    card: CardData,
    photo_jpeg: bytes | None,
    qr_png: bytes,
    *,
    dpi: int = 300,
    side: Literal["front", "back", "both"] = "both",
    font_path: str | None = None,
    font_index: int = 0,
) -> bytes:
    """A PNG preview: one side, or both stacked (front above back) on a light grey sheet."""
    font = find_font(font_path, font_index)
    font_name = _pdf_font(font)  # the layout measures text with the same font's metrics
    scale = dpi / 25.4
    pages = _pages(card, photo_jpeg, qr_png, font_name)
    chosen = {"front": pages[:1], "back": pages[1:], "both": pages}[side]
    w, h = round(WIDTH_MM * scale), round(HEIGHT_MM * scale)
    gap = round(4 * scale) if len(chosen) > 1 else 0
    sheet = Image.new("RGB", (w, h * len(chosen) + gap * (len(chosen) - 1)), (235, 235, 235))
    for i, ops in enumerate(chosen):
        page = Image.new("RGB", (w, h), WHITE)
        draw = ImageDraw.Draw(page)
        for op in ops:
            _draw_png(page, draw, op, font, scale)
        sheet.paste(page, (0, i * (h + gap)))
    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=True)
    return out.getvalue()


_pil_fonts: dict[tuple[str, int, int], ImageFont.FreeTypeFont] = {}


def _pil_font(font: _Font, px: int) -> ImageFont.FreeTypeFont:
    key = (font.path, font.index, px)
    if key not in _pil_fonts:
        _pil_fonts[key] = ImageFont.truetype(font.path, px, index=font.index)
    return _pil_fonts[key]


def _draw_png(page: Image.Image, draw: ImageDraw.ImageDraw, op: _Op, font: _Font, s: float) -> None:
    if isinstance(op, _Rect):
        box = (round(op.x * s), round(op.y * s), round((op.x + op.w) * s) - 1, round((op.y + op.h) * s) - 1)
        draw.rectangle(
            box, fill=op.fill, outline=op.stroke, width=max(1, round(op.line * s)) if op.stroke else 0
        )
    elif isinstance(op, _Text):
        face = _pil_font(font, max(1, round(op.size * PT_TO_MM * s)))
        anchor = {"left": "ls", "center": "ms", "right": "rs"}[op.align]
        stroke = max(1, round(op.size * 0.03 * PT_TO_MM * s)) if op.heavy else 0
        draw.text(
            (op.x * s, op.y * s),
            op.text,
            fill=op.color,
            font=face,
            anchor=anchor,
            stroke_width=stroke,
            stroke_fill=op.color,
        )
    else:
        image = Image.open(io.BytesIO(op.data)).convert("RGB")
        size = (round(op.w * s), round(op.h * s))
        image = image.resize(size, Image.Resampling.NEAREST if op.crisp else Image.Resampling.LANCZOS)
        page.paste(image, (round(op.x * s), round(op.y * s)))
