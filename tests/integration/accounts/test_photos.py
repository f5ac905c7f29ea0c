"""Officer photos: re-encoded, metadata stripped, bad files refused with nothing changed, scoped."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.accounts.models import Officer
from tests.factories import World
from tests.integration.conftest import Client


def _image(fmt: str = "JPEG", size: tuple[int, int] = (600, 800), exif: bool = False) -> bytes:
    img = Image.new("RGB", size, (200, 60, 60))
    buf = io.BytesIO()
    if exif:
        ex = Image.Exif()
        ex[0x010F] = "CameraMaker"  # Make
        img.save(buf, format=fmt, exif=ex)
    else:
        img.save(buf, format=fmt)
    return buf.getvalue()


async def test_upload_reencodes_and_serves(client: Client, world: World, db: AsyncSession) -> None:
    await client.login("admin_a")
    url = f"/api/officers/{world.officer_a.id}/photo"
    r = await client.put(url, files={"photo": ("me.jpg", _image(exif=True), "image/jpeg")})
    assert r.status_code == 200, r.text
    assert r.json()["has_photo"] is True
    got = await client.get(url)
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(got.content)) as img:
        assert img.size == (358, 441) and img.format == "JPEG"
        assert not img.getexif()  # metadata stripped
    # The officer sees their own photo; the sibling city's admin does not.
    await client.login("officer_a")
    assert (await client.get(url)).status_code == 200
    await client.login("admin_b")
    assert (await client.get(url)).status_code == 404


@pytest.mark.parametrize(
    "payload,message",
    [
        (b"not an image at all", "无法识别的图片文件，请上传 JPG 或 PNG 照片"),
        (_image("GIF"), "照片须为 JPG 或 PNG 格式"),
        (_image(size=(100, 120)), "照片分辨率过低（至少 200×250 像素）"),
        (b"", "请选择照片文件"),
    ],
)
async def test_bad_photos_are_refused(
    client: Client, world: World, db: AsyncSession, payload: bytes, message: str
) -> None:
    await client.login("admin_a")
    r = await client.put(
        f"/api/officers/{world.officer_a.id}/photo", files={"photo": ("x.jpg", payload, "image/jpeg")}
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"][0] == {"field": "photo", "message": message}
    path = await db.scalar(select(Officer.photo_path).where(Officer.id == world.officer_a.id))
    await db.commit()
    assert path is None


async def test_html_upload_form(client: Client, world: World) -> None:
    await client.login("admin_a")
    token = await client.csrf()
    r = await client.raw.post(
        f"/officers/{world.officer_a.id}/photo",
        data={"_csrf_token": token},
        files={"photo": ("p.png", _image("PNG"), "image/png")},
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"].endswith("?msg=photo")
    page = await client.get(f"/officers/{world.officer_a.id}", headers={"accept": "text/html"})
    assert f'src="/api/officers/{world.officer_a.id}/photo"' in page.text
