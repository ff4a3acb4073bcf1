"""Benchmark: one activation's context build + render (provider time excluded), per mode.

Channel: 400 messages, ~100,000 characters, 5 image attachments, 6 speakers, default config
(caching on, rolling not due). Measured: (a) build + render from converted messages, and
(b) the whole offline front half: fetch from the in-memory port + convert + build + render.

    .venv/bin/python bench/bench_pipeline.py [--runs 200]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time
from typing import Any

from chapterx.context.build import BuildInput, build_context
from chapterx.context.fetch import fetch_context
from chapterx.discord.memory import MemoryDiscord
from chapterx.llm.formatters import render

PNG = base64.b64encode(bytes.fromhex("89504e470d0a1a0a") + b"\0" * 4000).decode()
BOT = "930000000000000001"
USERS = [BOT] + [f"95000000000000000{i}" for i in range(1, 6)]


def world(n: int = 400, chars: int = 100_000, images: int = 5) -> dict[str, Any]:
    per = chars // n - 1
    messages = []
    for i in range(n):
        author = USERS[i % len(USERS)]
        text = (f"message {i} " + "lorem ipsum dolor sit amet " * 20)[:per]
        if i % 37 == 0:
            text = f"<@{USERS[(i + 1) % len(USERS)]}> " + text[:-24]
        m: dict[str, Any] = {"id": str(1_310_000_000_000_000_000 + i), "author_id": author, "content": text,
                             "type": 0, "timestamp": "2025-03-01T12:00:00.000Z"}
        if i >= n - images * 7 and (n - i) % 7 == 0:
            m["attachments"] = [{"id": f"79{i}", "filename": f"p{i}.png", "content_type": "image/png", "size": 4008,
                                 "url": f"https://cdn.invalid/{i}.png", "data_base64": PNG}]
        messages.append(m)
    return {
        "guild_id": "1", "channel_id": "710000000000000001", "channel_name": "general", "bot_user_id": BOT,
        "users": [{"id": u, "username": f"user{j}", "global_name": None, "bot": u == BOT} for j, u in enumerate(USERS)],
        "members": [], "roles": [], "channels": [], "emojis": [], "pins": [], "messages": messages,
    }


CONFIGS = {
    "prefill": {"name": "Aria", "continuation_model": "claude-sonnet-4-5-20250929", "mode": "prefill"},
    "chat": {"name": "Aria", "continuation_model": "claude-sonnet-4-5-20250929", "mode": "chat"},
    "base-model": {"name": "Aria", "continuation_model": "base:llama", "mode": "base-model"},
}


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def main(runs: int) -> None:
    port = MemoryDiscord(world())
    fetched = await fetch_context(port, port.primary_channel_id, depth=300 + 400, max_images=10)
    total_chars = sum(len(m.content) for m in fetched.messages)
    images = len(fetched.images)
    print(f"channel: {len(fetched.messages)} messages, {total_chars} characters, {images} images; {runs} runs")
    print(f"{'mode':<11} {'build+render p50':>17} {'p95':>8} {'fetch+convert+build+render p50':>32} {'p95':>8}")
    for mode, cfg in CONFIGS.items():
        inner: list[float] = []
        outer: list[float] = []
        for _ in range(runs):
            t0 = time.perf_counter()
            f = await fetch_context(port, port.primary_channel_id, depth=700, max_images=10)
            t1 = time.perf_counter()
            built = build_context(BuildInput(messages=f.messages, config=cfg, bot_user_id=BOT, bot_username="user0",
                                             images=f.images, documents=f.documents))
            render(mode, built.messages, cfg, stop_sequences=built.stop_sequences)
            t2 = time.perf_counter()
            inner.append((t2 - t1) * 1000)
            outer.append((t2 - t0) * 1000)
        print(f"{mode:<11} {statistics.median(inner):>14.2f} ms {p(inner, 95):>5.2f} ms "
              f"{statistics.median(outer):>29.2f} ms {p(outer, 95):>5.2f} ms")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=200)
    asyncio.run(main(ap.parse_args().runs))
