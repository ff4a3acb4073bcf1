"""Issue 9 item 1, second half: known secrets never leave in a Discord post or a provider request.

`chapterx run` as a subprocess against the fake Discord (discord.py) and the fake LLM server
(Anthropic SDK): a user pastes the bot's token into the channel and the model answers with the token
and the vendor key. Neither reaches the provider's request body or the message posted to Discord.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from chapterx.config.secrets import KnownSecrets
from chapterx.llm.fake import FakeLLMServer
from tests.discord.test_e2e_run import ALICE, API_KEY, BOT, CHANNEL, TOKEN, _env, _start, _stop, _tree
from tests.fakes.discord_server import FakeDiscord

RELAY = "relay-token-SECRET-in-bot-file"


def test_known_secrets_scrub_text_and_json_forms() -> None:
    k = KnownSecrets()
    k.add(["short", 'quo"te-secret-value', TOKEN])
    assert k.scrub_text("short stays") == "short stays"  # too short to be a secret
    body = {"messages": [{"content": f"a {TOKEN} b"}], "system": ['x quo"te-secret-value'], "n": 3}
    out = k.scrub(body)
    assert TOKEN not in json.dumps(out) and "quo" not in json.dumps(out) and out["n"] == 3
    assert body["messages"][0]["content"] == f"a {TOKEN} b"  # a copy; the caller's value is untouched
    assert k.found_in(json.dumps(body)) and not k.found_in("nothing here")


async def test_token_and_keys_never_reach_discord_or_the_provider(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    bot_file = root / "config" / "bots" / "aria.yaml"
    bot_file.write_text(bot_file.read_text() + f"tts_relay:\n  enabled: false\n  token: {RELAY}\n")
    answer = f"Sure! The token is {TOKEN}, the key is {API_KEY} and the relay token is {RELAY}."
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE]) as discord, \
            FakeLLMServer([{"text": answer}]) as llm:
        proc = await _start(["run", "--config", str(bot_file)], _env(tmp_path, discord, llm.base_url), tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> remember this: {TOKEN}")
            sends = await discord.wait_for("send", timeout=60)
        finally:
            code, stderr = await _stop(proc)
    assert code == 0, stderr
    posted = " ".join(str(s["content"]) for s in sends)
    assert "Sure! The token is" in posted
    for secret in (TOKEN, API_KEY, RELAY):
        assert secret not in posted
        assert secret not in json.dumps(llm.requests[0]["body"])
    assert "remember this" in json.dumps(llm.requests[0]["body"])  # the message itself still reached the model
