"""Image attachments are resized / re-encoded as upstream does (reference §2.7) and cached by content hash."""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from chapterx.context import images as im
from chapterx.context.fetch import fetch_context
from chapterx.discord.memory import MemoryDiscord


def _encode(img: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def test_jpeg_stays_jpeg_without_metadata() -> None:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0112] = 6  # orientation: rotate 90 -> applied, then dropped
    src = _encode(Image.new("RGB", (40, 20), (200, 10, 10)), "JPEG", quality=80, exif=exif)
    out = im.reencode(src)
    assert out is not None and out.media_type == "image/jpeg"
    got = _open(out.data)
    assert got.format == "JPEG" and (got.width, got.height) == (20, 40) == (out.width, out.height)
    assert not got.getexif() and b"SecretCam" not in out.data


@pytest.mark.parametrize(("mode", "fmt", "media"), [
    ("RGB", "PNG", "image/png"),      # PNG stays PNG
    ("RGBA", "WEBP", "image/png"),    # alpha -> PNG
    ("RGB", "WEBP", "image/jpeg"),    # anything else -> JPEG
    ("P", "GIF", "image/jpeg"),
])
def test_output_format_follows_upstream(mode: str, fmt: str, media: str) -> None:
    img = Image.new(mode, (16, 16))
    out = im.reencode(_encode(img, fmt))
    assert out is not None and out.media_type == media
    assert _open(out.data).format == media.split("/")[1].upper()


def test_fits_inside_8000_without_enlarging() -> None:
    big = im.reencode(_encode(Image.new("RGB", (9000, 30), (1, 2, 3)), "PNG"))
    assert big is not None and (big.width, big.height) == (8000, 27)
    small = im.reencode(_encode(Image.new("RGB", (30, 10)), "PNG"))
    assert small is not None and (small.width, small.height) == (30, 10)


def test_oversized_output_walks_the_quality_and_scale_ladder(monkeypatch: pytest.MonkeyPatch) -> None:
    noise = Image.frombytes("RGB", (300, 300), hashlib.shake_256(b"noise").digest(300 * 300 * 3))
    src = _encode(noise, "PNG")
    monkeypatch.setattr(im, "MAX_BASE64", 40_000)  # the PNG is far over: JPEG q85/70/55, then downscales
    out = im.reencode(src)
    assert out is not None and out.media_type == "image/jpeg"
    assert (len(out.data) + 2) // 3 * 4 <= 40_000
    assert out.width <= 300


def test_not_an_image_is_skipped() -> None:
    assert im.reencode(b"\x89PNG\r\n\x1a\n" + b"\0" * 100) is None


def test_disk_cache_by_content_hash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _encode(Image.new("RGB", (64, 48), (9, 99, 199)), "PNG")
    first = im.ImageCache(tmp_path).prepare(src)
    assert first is not None
    cached = tmp_path / f"{hashlib.sha256(src).hexdigest()}.png"
    assert cached.read_bytes() == first.data
    # a new process: memory empty, the file is reused (re-encoding would fail here)
    monkeypatch.setattr(im, "reencode", lambda data: pytest.fail("re-encoded despite the disk cache"))
    again = im.ImageCache(tmp_path).prepare(src)
    assert again == first


def test_default_cache_lives_under_cache_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_PATH", str(tmp_path / "cache"))
    assert im.default_cache().directory == tmp_path / "cache" / "images"


class CountingDiscord(MemoryDiscord):
    """The in-memory Discord, counting attachment downloads."""

    downloads = 0

    async def fetch_attachment(self, url: str) -> bytes:
        self.downloads += 1
        return await super().fetch_attachment(url)


async def test_fetch_context_sends_reencoded_bytes_and_reuses_them(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CACHE_PATH", str(tmp_path))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    photo = _encode(Image.new("RGB", (32, 32), (5, 6, 7)), "JPEG", exif=exif)
    world = {"guild_id": "1", "channel_id": "10", "bot_user_id": "2", "users": [
        {"id": "2", "username": "bot", "bot": True}, {"id": "3", "username": "ann", "bot": False}],
        "messages": [{"id": "100", "author_id": "3", "content": "look", "type": 0,
                      "timestamp": "2026-01-01T00:00:00.000Z", "attachments": [{
                          "id": "7", "filename": "p.jpg", "content_type": "image/jpeg", "size": len(photo),
                          "url": "https://cdn.invalid/p.jpg", "data_base64": base64.b64encode(photo).decode()}]}]}
    port = CountingDiscord(world)
    first = await fetch_context(port, "10", depth=10)
    img = first.images["https://cdn.invalid/p.jpg"]
    assert img.media_type == "image/jpeg" and img.data != photo and b"SecretCam" not in img.data
    # what share-image posts back to Discord: the attachment as downloaded
    assert img.original == photo and img.original_media_type == "image/jpeg"
    assert list((tmp_path / "images").glob("*.jpg"))
    second = await fetch_context(port, "10", depth=10)
    assert second.images["https://cdn.invalid/p.jpg"] == img
    assert port.downloads == 1  # the URL was seen: no second download
    other = CountingDiscord(world)  # another connection does download (URLs are per port)
    await fetch_context(other, "10", depth=10)
    assert other.downloads == 1
