"""Bot runtime figures: activation decisions per second, and mention -> reply latency end to end.

Run: .venv/bin/python bench/bench_runtime.py
1. `process_batch` on plain messages that do not activate (decision only: cached pins, config
   merge, sleep pins, mention and random checks) over the in-memory world.
2. The whole bot in process: discord.py against the local fake Discord (REST + gateway), the real
   pipeline and Anthropic SDK against the fake LLM server; time from the gateway MESSAGE_CREATE
   to the bot's REST post, sequential mentions.
3. `chapterx run` as a separate process against the same fakes: spawn -> ready ("connected to
   Discord" logged) and gateway READY -> ready, RSS (/proc VmRSS) at ready, 8 s later (the vendor
   SDK is imported in the background after ready) and after 50 activations, and which vendor SDKs
   a process wiring an Anthropic-only bot imports (only the bot's vendor should be).
4. The floor: RSS of a fresh interpreter with only asyncio, aiohttp, discord.py and the Anthropic SDK
   (what any Anthropic bot on discord.py holds, before a line of ChapterX).
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

from chapterx.agent.queue import Event
from chapterx.agent.runtime import BotRuntime, RuntimeOptions
from chapterx.discord.memory import MemoryDiscord

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


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def process_run(activations: int = 50, extra_env: dict[str, str] | None = None) -> dict[str, float]:
    """One `chapterx run` subprocess: start-up times and RSS."""
    import os

    from chapterx.llm.fake import FakeLLMServer
    from tests.fakes.discord_server import FakeDiscord

    tmp = Path(tempfile.mkdtemp(prefix="chapterx-bench-"))
    shutil.copytree(REPO / "tests" / "fixtures" / "discord" / "tree", tmp / "deploy")
    (tmp / "token").write_text(TOKEN)
    bot = {"id": "730000000000000001", "username": "aria-bot"}
    alice = {"id": "750000000000000001", "username": "alice"}
    out: dict[str, float] = {}
    async with FakeDiscord(token=TOKEN, bot=bot, users=[alice]) as discord, \
            FakeLLMServer([{"text": f"answer {i}"} for i in range(activations)]) as llm:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update({"DISCORD_TOKEN_FILE": str(tmp / "token"), "LOGS_DIR": str(tmp / "logs"),
                    "CACHE_PATH": str(tmp / "cache"), "TOOLS_PATH": str(tmp / "tools"), "LOG_LEVEL": "info",
                    "CHAPTERX_DISCORD_API": discord.api_base, "CHAPTERX_LLM_BASE_URL": llm.base_url,
                    "PYTHONPATH": str(REPO), **(extra_env or {})})
        t0 = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chapterx", "run", "--config", str(tmp / "deploy" / "config" / "bots" / "aria.yaml"),
            env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        assert proc.stderr is not None
        try:
            while True:
                line = await asyncio.wait_for(proc.stderr.readline(), 60)
                if not line:
                    raise RuntimeError("chapterx run exited before it was ready")
                if b"connected to Discord" in line:
                    ready = time.monotonic()
                    break
            out["spawn_to_ready_s"] = ready - t0
            out["gateway_ready_to_ready_s"] = ready - (discord.ready_sent_at or ready)
            out["rss_at_ready_mib"] = _rss_mib(proc.pid)
            drain = asyncio.create_task(_drain(proc.stderr))
            await asyncio.sleep(8)  # the vendor SDK is imported in the background after ready
            out["rss_after_start_settled_mib"] = _rss_mib(proc.pid)
            for i in range(activations):
                await discord.user_message("710000000000000001", alice["id"], f"<@{bot['id']}> question {i}")
                await discord.wait_for("send", count=i + 1, timeout=60)
            out["rss_after_activations_mib"] = _rss_mib(proc.pid)
        finally:
            proc.terminate()
            await proc.wait()
        drain.cancel()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.readline():
        pass


def vendor_sdks_imported() -> list[str]:
    """Vendor SDKs a fresh interpreter holds after wiring a bot whose only vendor is Anthropic."""
    import subprocess

    code = ("import sys, chapterx.app, chapterx.agent.runtime, chapterx.discord.connector\n"
            "from chapterx.llm.routing import Router\n"
            "Router({'anthropic': {'config': {'anthropic_api_key': 'x'}}}, env={}).route('claude-sonnet-4-5')\n"
            "print(' '.join(m for m in ('anthropic', 'openai', 'google.genai', 'botocore') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    return done.stdout.split()


def floor_mib() -> dict[str, float]:
    """The RSS no Anthropic bot on discord.py can go below, in a fresh interpreter: bare Python, plus
    asyncio + aiohttp + discord.py (the gateway), plus `import anthropic` and one async client."""
    import subprocess

    code = ("def rss():\n"
            "    for line in open('/proc/self/status'):\n"
            "        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024\n"
            "bare = rss()\n"
            "import asyncio, aiohttp, discord\n"
            "gateway = rss()\n"
            "import anthropic\n"
            "anthropic.AsyncAnthropic(api_key='x', http_client=anthropic.DefaultAioHttpClient())\n"
            "print(bare, gateway, rss())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    bare, gateway, sdk = (float(x) for x in done.stdout.split())
    return {"bare_python": bare, "with_aiohttp_discord": gateway, "with_anthropic_sdk": sdk}


async def main() -> None:
    print("load average before:", Path("/proc/loadavg").read_text().strip())
    runs = [await process_run() for _ in range(3)]
    for key in runs[0]:
        values = sorted(r[key] for r in runs)
        print(f"{key}: median {statistics.median(values):.2f} (min {values[0]:.2f}, max {values[-1]:.2f})")
    floors = [floor_mib() for _ in range(3)]
    print("floor (fresh interpreter, MiB): " + ", ".join(
        f"{key} {statistics.median(f[key] for f in floors):.1f}" for key in floors[0]))
    print("vendor SDKs imported for an Anthropic-only bot:", " ".join(vendor_sdks_imported()))
    print("load average:", Path("/proc/loadavg").read_text().strip())
    rate = await decisions()
    print(f"decisions (no activation): {rate:,.0f} batches/s")
    lat = sorted(await end_to_end())
    print(f"mention -> reply: p50 {statistics.median(lat):.0f} ms, p95 {lat[int(len(lat) * 0.95) - 1]:.0f} ms, "
          f"max {lat[-1]:.0f} ms over {len(lat)} mentions")


if __name__ == "__main__":
    asyncio.run(main())
