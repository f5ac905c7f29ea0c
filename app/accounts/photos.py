"""Officer photos (证件照): validated, re-encoded and stored under VAR_DIR/photos.

Re-encoding every upload to a fixed-size JPEG strips metadata (EXIF location and the like),
defuses decompression bombs and malformed files, and gives the card renderer one format.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from app.lib.errors import DomainError
from app.settings import VAR_DIR

MAX_PHOTO_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 40_000_000
# 1-inch ID photo proportions (25 x 35 mm): what the card prints.
PHOTO_SIZE = (358, 441)


def photo_dir() -> Path:
    return VAR_DIR / "photos"


def normalise_photo(data: bytes) -> bytes:
    """JPEG bytes of the photo cropped to the card's proportions; DomainError (Chinese) if unusable."""
    if not data:
        raise DomainError("请选择照片文件", field="photo")
    if len(data) > MAX_PHOTO_BYTES:
        raise DomainError("照片不能超过5MB", field="photo")
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.format not in {"JPEG", "PNG"}:
                raise DomainError("照片须为 JPG 或 PNG 格式", field="photo")
            if img.width < 200 or img.height < 250:
                raise DomainError("照片分辨率过低（至少 200×250 像素）", field="photo")
            upright = ImageOps.exif_transpose(img)
            fitted = ImageOps.fit(upright.convert("RGB"), PHOTO_SIZE, method=Image.Resampling.LANCZOS)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError) as exc:
        raise DomainError("无法识别的图片文件，请上传 JPG 或 PNG 照片", field="photo") from exc
    out = io.BytesIO()
    fitted.save(out, format="JPEG", quality=88, optimize=True)
    return out.getvalue()


def store_photo(officer_id: int, jpeg: bytes) -> str:
    """Write the photo; returns its path relative to VAR_DIR (content-addressed, never overwritten)."""
    name = f"{officer_id}-{hashlib.sha256(jpeg).hexdigest()[:16]}.jpg"
    target = photo_dir() / name
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.write_bytes(jpeg)
    tmp.replace(target)
    return f"photos/{name}"


def read_photo(relative: str) -> bytes | None:
    path = (VAR_DIR / relative).resolve()
    if not path.is_relative_to(photo_dir().resolve()) or not path.exists():
        return None
    return path.read_bytes()
