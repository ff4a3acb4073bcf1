"""Bot runtime figures: activation decisions per second, and mention -> reply latency end to end.

Run: .venv/bin/python bench/bench_runtime.py
1. `process_batch` on plain messages that do not activate (decision only: cached pins, config
   merge, sleep pins, mention and random checks) over the in-memory world.
2. The whole bot in process: discord.py against the local fake Discord (REST + gateway), the real
   pipeline and Anthropic SDK against the fake LLM server; time from the gateway MESSAGE_CREATE
   to the bot's REST post, sequential mentions.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chapterx.agent.queue import Event  # noqa: E402
from chapterx.agent.runtime import BotRuntime, RuntimeOptions  # noqa: E402
from chapterx.discord.memory import MemoryDiscord  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
TOKEN = "MTIzNDU2Nzg5.bench-token.value"


async def decisions(n: int = 5000) -> float:
    from chapterx.app import CachedConfigLoader, prepare_bot

    root = REPO / "tests" / "fixtures" / "discord" / "tree" / "config"
    tok = Path(tempfile.mkdtemp(prefix="chapterx-bench-")) / "token"
    tok.write_text(TOKEN)
    loader = CachedConfigLoader(prepare_bot(bot_file=root / "bots" / "aria.yaml", env={"DISCORD_TOKEN_FILE": str(tok)}))
    world = MemoryDiscord({"guild_id": "1", "channel_id": "10", "bot_user_id": "900",
                           "users": [{"id": "900", "username": "aria-bot", "bot": True},
                                     {"id": "100", "username": "alice"}],
                           "pins": [{"id": "1", "content": ".config\n---\nmax_tokens: 100", "author_id": "100"}]})
    rt = BotRuntime(world, RuntimeOptions(
        bot_id="aria", provider_factory=lambda m: None,
        load_config=lambda texts: loader("1", texts)))
    rt.port.pins["10"] = await world.fetch_pins("10")
    t0 = time.perf_counter()
    for i in range(n):
        msg = world.add_message("10", {"id": str(2000 + i), "author_id": "100", "content": f"chat {i}"})
        out = await rt.process_batch([Event("message", "10", "1", msg)])
        assert not out.activated
    return n / (time.perf_counter() - t0)


async def end_to_end(n: int = 20) -> list[float]:
    from chapterx.app import prepare_bot, serve
    from chapterx.llm.fake import FakeLLMServer
    from tests.fakes.discord_server import FakeDiscord

    tmp = Path(tempfile.mkdtemp(prefix="chapterx-bench-"))
    shutil.copytree(REPO / "tests" / "fixtures" / "discord" / "tree", tmp / "deploy")
    (tmp / "token").write_text(TOKEN)
    bot = {"id": "730000000000000001", "username": "aria-bot"}
    alice = {"id": "750000000000000001", "username": "alice"}
    latencies: list[float] = []
    async with FakeDiscord(token=TOKEN, bot=bot, users=[alice]) as discord, \
            FakeLLMServer([{"text": f"answer {i}"} for i in range(n)]) as llm:
        env = {"DISCORD_TOKEN_FILE": str(tmp / "token"), "LOGS_DIR": str(tmp / "logs"),
               "CACHE_PATH": str(tmp / "cache"), "TOOLS_PATH": str(tmp / "tools"),
               "CHAPTERX_DISCORD_API": discord.api_base, "CHAPTERX_LLM_BASE_URL": llm.base_url}
        plan = prepare_bot(bot_file=tmp / "deploy" / "config" / "bots" / "aria.yaml", env=env)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(plan, stop=stop))
        await asyncio.wait_for(discord.identified.wait(), 60)
        await asyncio.sleep(0.5)
        for i in range(n):
            t0 = time.perf_counter()
            await discord.user_message("710000000000000001", alice["id"], f"<@{bot['id']}> question {i}")
            await discord.wait_for("send", count=i + 1, timeout=60)
            latencies.append((time.perf_counter() - t0) * 1000)
            await asyncio.sleep(0.05)
        stop.set()
        await task
    shutil.rmtree(tmp, ignore_errors=True)
    return latencies


async def main() -> None:
    rate = await decisions()
    print(f"decisions (no activation): {rate:,.0f} batches/s")
    lat = sorted(await end_to_end())
    print(f"mention -> reply: p50 {statistics.median(lat):.0f} ms, p95 {lat[int(len(lat) * 0.95) - 1]:.0f} ms, "
          f"max {lat[-1]:.0f} ms over {len(lat)} mentions")


if __name__ == "__main__":
    asyncio.run(main())
