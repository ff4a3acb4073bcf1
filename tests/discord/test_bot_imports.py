"""What a running bot keeps in memory: `chapterx run` of a plain Anthropic bot, as its own process.

Every module a bot imports stays resident for its whole life (issue 10: RSS under 100 MiB). The bot
answers a mention with a pinned `.config` (validated at run time) through the Anthropic SDK; then it
must not hold Pillow (loaded with the first image only), the other vendors' SDKs, the SDK's default HTTP stack (it uses its aiohttp
transport), or built pydantic validators for the SDK's response types (read as plain JSON). A later message with an image attachment loads Pillow.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from chapterx.llm.fake import FakeLLMServer
from tests.discord.test_e2e_run import ALICE, BOT, CHANNEL, TOKEN, _env, _tree
from tests.fakes.discord_server import FakeDiscord
from tests.procs import stop

# `chapterx run` itself (chapterx.cli.main), with a thread that reports the process's modules (ours, and others
# to one dot) and
# whether the SDK's response models have built their validators, one JSON line per line on stdin.
CHILD = """
import json, sys, threading

def report():
    for _ in sys.stdin:
        types = sys.modules.get("anthropic.types")
        built = [n for n in ("Message", "RawMessageStartEvent", "RawContentBlockDeltaEvent")
                 if types is not None and getattr(types, n).__pydantic_complete__]
        names = {m for m in sys.modules if m.count(".") <= 1 or m.startswith("chapterx.")}
        print(json.dumps({"modules": sorted(names), "built": built}), flush=True)

threading.Thread(target=report, daemon=True).start()
from chapterx.cli import main
sys.exit(main(["run", "--config", sys.argv[1]]))
"""

# anyio._backends: the SDK's default httpx transport; the bot gives it the SDK's aiohttp transport instead
NOT_IN_A_PLAIN_BOT = ("PIL", "openai", "google.genai", "botocore",
                      "anyio._backends", "regex")  # regex: chapter2 activation rules only


async def _report(proc: asyncio.subprocess.Process) -> dict[str, list[str]]:
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(b"?\n")
    await proc.stdin.drain()
    data: dict[str, list[str]] = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    return data


async def test_a_plain_bot_holds_only_what_it_uses(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE]) as discord, \
            FakeLLMServer([{"text": "first answer"}, {"text": "second answer"}]) as llm:
        discord.pin(CHANNEL, ALICE["id"], ".config\n---\nmax_tokens: 321")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, str(root / "config" / "bots" / "aria.yaml"),
            env=_env(tmp_path, discord, llm.base_url), cwd=str(tmp_path),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> hi there")
            await discord.wait_for("send", timeout=60)
            plain = await _report(proc)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> look at this", attachments=[
                {"filename": "cat.gif", "text": "GIF89a (not a decodable image)", "content_type": "image/gif"}])
            await discord.wait_for("send", count=2, timeout=60)
            after_image = await _report(proc)
        finally:
            code, stderr = await stop(proc)
        assert code == 0, stderr
    assert llm.requests[0]["body"]["max_tokens"] == 321  # the pinned .config was read and checked
    modules = set(plain["modules"])
    assert "anthropic" in modules and "jsonschema" in modules  # the SDK did the call; the pin was schema-checked
    assert [m for m in NOT_IN_A_PLAIN_BOT if m in modules] == []
    assert plain["built"] == []
    assert "PIL.Image" in after_image["modules"]  # the first image attachment loads Pillow
    assert after_image["built"] == []
