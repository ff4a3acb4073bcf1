"""Benchmark: what real image attachments add to an activation's front half (issue 11 target: <= 3 ms p50).

Same channel as bench_pipeline.py (400 messages, ~100,000 characters, 6 speakers), once with 5 real
image attachments (2 photo-like JPEGs 1600x1200, 2 PNG screenshots 1280x800, 1 PNG with alpha 512x512)
and once text-only. Measured per run: fetch from the in-memory port + convert + image preparation
(Pillow re-encode, cached by content hash) + build + render (prefill). Steady state: every activation
sees the same attachments, so after the first one the prepared bytes come from the cache. The first
(cold) activation's re-encode time is printed separately, and a disk-cache hit (new process) too.

    .venv/bin/python bench/bench_images.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline import BOT, CONFIGS, world  # noqa: E402

from chapterx.context import images as img_mod  # noqa: E402
from chapterx.context.build import BuildInput, build_context  # noqa: E402
from chapterx.context.fetch import fetch_context  # noqa: E402
from chapterx.discord.memory import MemoryDiscord  # noqa: E402
from chapterx.llm.formatters import render  # noqa: E402


def _photo(w: int, h: int, seed: int) -> bytes:
    rnd = random.Random(seed)
    im = Image.new("RGB", (w, h))
    px = im.load()
    for y in range(0, h, 8):
        for x in range(0, w, 8):
            c = (rnd.randrange(256), (x * 255) // w, (y * 255) // h)
            for dy in range(8):
                for dx in range(8):
                    if x + dx < w and y + dy < h:
                        px[x + dx, y + dy] = c
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue()


def _png(w: int, h: int, alpha: bool) -> bytes:
    im = Image.new("RGBA" if alpha else "RGB", (w, h), (30, 30, 30, 128) if alpha else (250, 250, 250))
    for y in range(0, h, 20):
        for x in range(w):
            im.putpixel((x, y), (x % 256, 80, 160, 255) if alpha else (x % 256, 80, 160))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def images() -> list[tuple[str, bytes]]:
    return [("image/jpeg", _photo(1600, 1200, 1)), ("image/jpeg", _photo(1600, 1200, 2)),
            ("image/png", _png(1280, 800, False)), ("image/png", _png(1024, 768, False)),
            ("image/png", _png(512, 512, True))]


def with_real_images(w: dict[str, Any], imgs: list[tuple[str, bytes]] | None) -> dict[str, Any]:
    k = 0
    for m in w["messages"]:
        if "attachments" in m:
            if imgs is None:
                del m["attachments"]
                continue
            ctype, data = imgs[k % len(imgs)]
            k += 1
            ext = "jpg" if ctype == "image/jpeg" else "png"
            m["attachments"] = [{"id": f"79{m['id'][-4:]}", "filename": f"p.{ext}", "content_type": ctype,
                                 "size": len(data), "url": f"https://cdn.invalid/{m['id']}.{ext}",
                                 "data_base64": base64.b64encode(data).decode()}]
    return w


async def one(port: MemoryDiscord, cfg: dict[str, Any]) -> tuple[float, int, int]:
    t0 = time.perf_counter()
    f = await fetch_context(port, port.primary_channel_id, depth=700, max_images=10)
    built = build_context(BuildInput(messages=f.messages, config=cfg, bot_user_id=BOT, bot_username="user0",
                                     images=f.images, documents=f.documents))
    render("prefill", built.messages, cfg, stop_sequences=built.stop_sequences)
    blocks = sum(1 for m in built.messages for b in m.content if b.get("type") == "image")
    return (time.perf_counter() - t0) * 1000, len(f.images), blocks


async def main(runs: int) -> None:
    cfg = CONFIGS["prefill"]
    imgs = images()
    with tempfile.TemporaryDirectory() as cache_dir:
        cache = img_mod.ImageCache(Path(cache_dir))
        img_mod._caches[None] = cache  # the default cache of this process (CACHE_PATH unset)
        port = MemoryDiscord(with_real_images(world(), imgs))
        text_port = MemoryDiscord(with_real_images(world(), None))
        cold, n, blocks = await one(port, cfg)
        # a new process with the disk cache filled: memory empty, files present
        img_mod._caches[None] = img_mod.ImageCache(Path(cache_dir))
        disk, _, _ = await one(port, cfg)
        with_img: list[float] = []
        text: list[float] = []
        for _ in range(runs):
            with_img.append((await one(port, cfg))[0])
            text.append((await one(text_port, cfg))[0])
    p50_i, p50_t = statistics.median(with_img), statistics.median(text)
    print(f"{n} images fetched and prepared ({', '.join(f'{len(d) // 1024} KB {t}' for t, d in imgs)}), "
          f"{blocks} sent as image blocks by the default selection; {runs} runs, prefill")
    print(f"first activation (re-encode, cache empty): {cold:.1f} ms; first after restart (disk cache): {disk:.1f} ms")
    print(f"text-only          p50 {p50_t:6.2f} ms  p95 {statistics.quantiles(text, n=20)[18]:6.2f} ms")
    print(f"with 5 images      p50 {p50_i:6.2f} ms  p95 {statistics.quantiles(with_img, n=20)[18]:6.2f} ms")
    print(f"image path cost    p50 {p50_i - p50_t:6.2f} ms  (target <= 3 ms)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    asyncio.run(main(ap.parse_args().runs))
