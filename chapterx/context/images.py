"""Image attachments re-encoded before they go to a provider, as upstream does (runtime reference §2.7).

Upstream (sharp) fits an image inside 8000x8000 without enlarging it and strips its metadata; an image
with alpha, or a PNG, becomes PNG (compression level 6), anything else JPEG q95. When the base64 is
still over 5 MB it tries JPEG q85, q70, q55, then up to five 0.8x downscales, then half size. We do
the same with Pillow (the JPEG bytes differ from mozjpeg's; the vectors compare image blocks by
structure). Re-encoding costs tens of milliseconds, so results are cached by the input's SHA-256:
in memory for the process and on disk under `CACHE_PATH/images/` (when CACHE_PATH is set) across
restarts. An image Pillow cannot decode is skipped (None), like one whose bytes are not an image.
Pillow is imported on the first image, not with the module: most bots never see one, and it costs
~2.5 MiB of RSS in every bot process (bench/README.md, bot runtime).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from chapterx.context.types import ImageData

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

MAX_SIDE = 8000
MAX_BASE64 = 5 * 1024 * 1024
PNG_LEVEL = 6
JPEG_QUALITY = 95
RETRY_QUALITIES = (85, 70, 55)
DOWNSCALE_STEPS = 5
_EXT = {"image/png": "png", "image/jpeg": "jpg"}
_MEDIA = {v: k for k, v in _EXT.items()}
_MEMORY_LIMIT = 256  # prepared images kept in memory (LRU)


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    media_type: str  # image/png or image/jpeg
    width: int
    height: int


def _b64_len(n: int) -> int:
    return (n + 2) // 3 * 4


def _encode(img: Image.Image, as_png: bool, quality: int = JPEG_QUALITY) -> bytes:
    buf = io.BytesIO()
    if as_png:
        img.save(buf, format="PNG", compress_level=PNG_LEVEL)  # no metadata: nothing is passed on
    else:
        rgb = img if img.mode in ("RGB", "L") else img.convert("RGB")
        rgb.save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def reencode(data: bytes) -> PreparedImage | None:
    """Pure: the bytes upstream would send for `data` (None when it is not a decodable image)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            source_format = opened.format
            opened.seek(0)  # animated GIF/WebP: the first frame, as sharp takes by default
            img = ImageOps.exif_transpose(opened) or opened
            img.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        log.warning("image skipped: cannot decode (%s)", exc)
        return None
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info)
    as_png = has_alpha or source_format == "PNG"
    if as_png and img.mode not in ("RGBA", "RGB", "LA", "L"):
        img = img.convert("RGBA" if has_alpha else "RGB")
    if img.width > MAX_SIDE or img.height > MAX_SIDE:
        img.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = _encode(img, as_png)
    if _b64_len(len(out)) > MAX_BASE64:
        out, as_png, img = _shrink(img)
    return PreparedImage(out, "image/png" if as_png else "image/jpeg", img.width, img.height)


def _shrink(img: Image.Image) -> tuple[bytes, bool, Image.Image]:
    """Upstream's resampling ladder for an image whose base64 is over 5 MB (always ends as JPEG)."""
    from PIL import Image

    out = b""
    for q in RETRY_QUALITIES:
        out = _encode(img, False, q)
        if _b64_len(len(out)) <= MAX_BASE64:
            return out, False, img
    scaled = img
    for _ in range(DOWNSCALE_STEPS):
        scaled = scaled.resize((max(1, int(scaled.width * 0.8)), max(1, int(scaled.height * 0.8))),
                               Image.Resampling.LANCZOS)
        out = _encode(scaled, False, RETRY_QUALITIES[-1])
        if _b64_len(len(out)) <= MAX_BASE64:
            return out, False, scaled
    half = img.resize((max(1, img.width // 2), max(1, img.height // 2)), Image.Resampling.LANCZOS)
    return _encode(half, False, RETRY_QUALITIES[-1]), False, half


class ImageCache:
    """Re-encoded images by content hash: memory (LRU) first, then `<dir>/<sha256>.<png|jpg>`."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._memory: OrderedDict[str, PreparedImage] = OrderedDict()
        # per Discord connection (a port): URL -> the image as fetch_context returns it, dropped with the port
        self._urls: weakref.WeakKeyDictionary[object, OrderedDict[str, ImageData]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def by_url(self, scope: object, url: str) -> ImageData | None:
        """An attachment URL `scope` (the Discord port) saw before: Discord attachment URLs name
        immutable files, so no download and no hashing (upstream's memory tier)."""
        with self._lock:
            try:
                urls = self._urls.get(scope)
            except TypeError:  # a scope that cannot be weakly referenced: no URL tier
                return None
            hit = urls.get(url) if urls is not None else None
            if hit is not None and urls is not None:
                urls.move_to_end(url)
            return hit

    def remember_url(self, scope: object, url: str, image: ImageData) -> None:
        with self._lock:
            try:
                urls = self._urls.setdefault(scope, OrderedDict())
            except TypeError:
                return
            urls[url] = image
            while len(urls) > _MEMORY_LIMIT:
                urls.popitem(last=False)

    def cached(self, data: bytes) -> PreparedImage | None:
        """The memory hit for `data`, if any (cheap: one hash)."""
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            hit = self._memory.get(key)
            if hit is not None:
                self._memory.move_to_end(key)
            return hit

    def prepare(self, data: bytes) -> PreparedImage | None:
        """The prepared image (memory, disk, or re-encoded now and stored in both)."""
        hit = self.cached(data)
        if hit is not None:
            return hit
        key = hashlib.sha256(data).hexdigest()
        prepared = self._from_disk(key)
        if prepared is None:
            prepared = reencode(data)
            if prepared is None:
                return None
            self._to_disk(key, prepared)
        with self._lock:
            self._memory[key] = prepared
            while len(self._memory) > _MEMORY_LIMIT:
                self._memory.popitem(last=False)
        return prepared

    def _from_disk(self, key: str) -> PreparedImage | None:
        if self.directory is None:
            return None
        for ext, media in _MEDIA.items():
            path = self.directory / f"{key}.{ext}"
            try:
                data = path.read_bytes()
            except OSError:
                continue
            from PIL import Image, UnidentifiedImageError

            try:
                with Image.open(io.BytesIO(data)) as img:
                    return PreparedImage(data, media, img.width, img.height)
            except (UnidentifiedImageError, OSError):
                return None  # a damaged cache file: re-encode (and overwrite it)
        return None

    def _to_disk(self, key: str, prepared: PreparedImage) -> None:
        if self.directory is None:
            return
        path = self.directory / f"{key}.{_EXT[prepared.media_type]}"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp.write_bytes(prepared.data)
            os.replace(tmp, path)
        except OSError as exc:  # a read-only or full cache folder costs speed, not the image
            log.warning("image cache %s not written: %s", self.directory, exc.strerror)
            tmp.unlink(missing_ok=True)


_caches: dict[Path | None, ImageCache] = {}


async def image_for_attachment(data: bytes, media_type: str, *, url: str, scope: object,
                               cache: ImageCache | None = None) -> ImageData | None:
    """The attachment `data` prepared for a provider (a memory hit inline, anything else in a worker
    thread: a re-encode takes tens of milliseconds and must not stall the event loop), keeping the
    downloaded bytes as `original`; remembered for `url` on `scope` (`by_url`)."""
    import asyncio

    cache = cache or default_cache()
    prepared = cache.cached(data)
    if prepared is None:
        prepared = await asyncio.to_thread(cache.prepare, data)
    if prepared is None:
        return None
    image = ImageData(prepared.data, prepared.media_type, prepared.width, prepared.height,
                      original=data, original_media_type=media_type)
    cache.remember_url(scope, url, image)
    return image


def default_cache() -> ImageCache:
    """The process's cache: on disk under `$CACHE_PATH/images/` when CACHE_PATH is set, else memory only."""
    root = os.environ.get("CACHE_PATH")
    directory = Path(root) / "images" if root else None
    cache = _caches.get(directory)
    if cache is None:
        cache = _caches[directory] = ImageCache(directory)
    return cache
