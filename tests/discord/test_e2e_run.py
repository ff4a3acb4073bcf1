"""End to end: `chapterx run` as a subprocess against a fake Discord and a fake LLM server.

discord.py logs in over REST, connects to the fake gateway, receives a MESSAGE_CREATE that mentions
the bot, and the bot answers through the real pipeline (Anthropic SDK to the fake LLM server) with a
REST post; a trace file and its index line appear under LOGS_DIR and hold no secret; SIGTERM ends
the process cleanly.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
from pathlib import Path

import pytest

from chapterx.llm.fake import FakeLLMServer
from tests.conftest import FIXTURES_DIR, REPO_DIR
from tests.fakes.discord_server import FakeDiscord
from tests.procs import start_chapterx, stop

TOKEN = "MTIzNDU2Nzg5.fake-discord-TOKEN.e2e-secret-value"
API_KEY = "sk-ant-e2e-SECRET-KEY-0001"
BOT = {"id": "730000000000000001", "username": "aria-bot"}
ALICE = {"id": "750000000000000001", "username": "alice", "global_name": "Alice A"}
CHANNEL = "710000000000000001"
API_TOKEN = "api-bearer-e2e-secret"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _api_checks(port: int, trigger_id: str) -> dict[str, object]:
    """The REST API of the running bot, over the real connector's cache."""
    import aiohttp

    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/health") as r:
            health = r.status
        async with http.get(base + f"/api/channels/{CHANNEL}/latest") as r:
            no_auth = r.status
        async with http.get(base + f"/api/channels/{CHANNEL}/latest", headers={"Authorization": "Bearer x"}) as r:
            wrong = r.status
        async with http.get(base + f"/api/channels/{CHANNEL}/latest?messages=10", headers=auth) as r:
            latest = await r.json()
        async with http.get(base + "/api/channels?since=2000-01-01T00:00:00Z", headers=auth) as r:
            chans = await r.json()
    return {"health": health, "no_auth": no_auth, "wrong": wrong,
            "latest_has_trigger": trigger_id in [m["id"] for m in latest["messages"]],
            "channels": [c["id"] for c in chans["channels"]]}


def _tree(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    shutil.copytree(FIXTURES_DIR / "discord" / "tree", root)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "aria.token").write_text(TOKEN + "\n", encoding="utf-8")
    return root


def _env(tmp_path: Path, discord: FakeDiscord, llm_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({
        "DISCORD_TOKEN_FILE": str(tmp_path / "secrets" / "aria.token"),
        "LOGS_DIR": str(tmp_path / "logs"), "CACHE_PATH": str(tmp_path / "cache"),
        "TOOLS_PATH": str(tmp_path / "tools"),
        "CHAPTERX_DISCORD_API": discord.api_base, "CHAPTERX_LLM_BASE_URL": llm_url,
        "PYTHONPATH": str(REPO_DIR), "LOG_LEVEL": "info",
    })
    env.update(extra)
    return env


_start, _stop = start_chapterx, stop  # the names the other e2e modules import


async def test_run_answers_a_mention_and_writes_a_trace(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE]) as discord, \
            FakeLLMServer([{"text": "Hello Alice, nice to meet you."}]) as llm:
        discord.pin(CHANNEL, ALICE["id"], ".config\n---\nmax_tokens: 321")
        api_port = _free_port()
        proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")],
                            _env(tmp_path, discord, llm.base_url, API_BEARER_TOKEN=API_TOKEN,
                                 API_PORT=str(api_port), API_HOST="127.0.0.1"), tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)  # READY/GUILD_CREATE processed by the client
            await discord.user_message(CHANNEL, ALICE["id"], "nobody asked me")
            await asyncio.sleep(0.5)  # its own batch (a batch's trigger is its first message, as upstream)
            trigger = await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> hi there")
            sends = await discord.wait_for("send", timeout=60)
            api = await _api_checks(api_port, trigger["id"])
        finally:
            code, stderr = await _stop(proc)
        assert sends[0]["content"] == "Hello Alice, nice to meet you."
        assert sends[0]["reply_to"] == trigger["id"]
        assert sends[0]["channel_id"] == CHANNEL
        kinds = [a["type"] for a in discord.actions]
        assert kinds.index("typing") < kinds.index("send")
        assert len(llm.requests) == 1
        body = llm.requests[0]["body"]
        assert body["max_tokens"] == 321  # the pinned .config reached the request
        assert "hi there" in json.dumps(body)
        assert code == 0, stderr
        assert discord.auth_failures == 0
        assert api == {"health": 200, "no_auth": 401, "wrong": 403, "latest_has_trigger": True,
                       "channels": [CHANNEL]}
    traces = tmp_path / "logs" / "traces"
    index = (traces / "index.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(index) == 1
    entry = json.loads(index[0])
    files = [p for p in traces.rglob("*.json")]
    assert len(files) == 1
    trace = json.loads(files[0].read_text(encoding="utf-8"))
    assert trace["triggeringMessageId"] == trigger["id"]
    assert trace["channelId"] == CHANNEL
    assert trace["activation"]["reason"] == "mention"
    assert trace["outcome"]["success"] is True
    assert entry.get("traceId") == trace["traceId"]
    everything = "\n".join(p.read_text(encoding="utf-8", errors="replace")
                           for p in (tmp_path / "logs").rglob("*") if p.is_file())
    for secret in (TOKEN, API_KEY, API_TOKEN):
        assert secret not in everything
        assert secret not in stderr


async def test_run_missing_token_file_is_one_line(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items()}
    env.update({"DISCORD_TOKEN_FILE": str(tmp_path / "nope" / "token"), "PYTHONPATH": str(REPO_DIR)})
    proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")], env, tmp_path)
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 2
    assert lines == [f"chapterx: error: Discord token file not found: {tmp_path / 'nope' / 'token'}"]


async def test_run_bad_token_is_reported(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    async with FakeDiscord(token="another-token-value", bot=BOT) as discord:
        proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")],
                            _env(tmp_path, discord, "http://127.0.0.1:9"), tmp_path)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    text = err.decode()
    assert proc.returncode == 1
    assert text.strip().splitlines()[-1] == "chapterx: error: Discord rejected the token (login failed)"
    assert TOKEN not in text


@pytest.mark.parametrize("model, message", [
    ("no-such-model-xyz", "no-such-model-xyz"),
])
async def test_run_no_vendor_for_model(tmp_path: Path, model: str, message: str) -> None:
    root = _tree(tmp_path)
    bot = root / "config" / "bots" / "aria.yaml"
    bot.write_text(bot.read_text().replace("claude-sonnet-4-5-20250929", model))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update({"DISCORD_TOKEN_FILE": str(tmp_path / "secrets" / "aria.token"), "PYTHONPATH": str(REPO_DIR)})
    proc = await _start(["run", "--config", str(bot)], env, tmp_path)
    _out, err = await asyncio.wait_for(proc.communicate(), 60)
    lines = err.decode().strip().splitlines()
    assert proc.returncode == 1
    assert len(lines) == 1 and lines[0].startswith("chapterx: error: ") and message in lines[0]


async def test_run_chapter2_em_in_place(tmp_path: Path) -> None:
    """`--ems` on a chapter2 deployment with `--rules chapterx`: the em runs translated to ChapterX's runtime
    without migrating (today's behaviour), its folder is left untouched. (chapter2's own rules, the
    default, are covered by tests/chapter2_runtime/test_e2e_run.py.)"""
    ems = tmp_path / "ems"
    shutil.copytree(FIXTURES_DIR / "discord" / "chapter2" / "ems", ems)
    before = {p: p.read_bytes() for p in ems.rglob("*") if p.is_file()}
    token = (ems / "wren" / "discord_token").read_text().strip()
    bot = {"id": "730000000000000009", "username": "wren-bot"}
    async with FakeDiscord(token=token, bot=bot, users=[ALICE]) as discord, \
            FakeLLMServer([{"text": " The tide is out."}]) as llm:
        env = _env(tmp_path, discord, llm.base_url)
        env.pop("DISCORD_TOKEN_FILE")
        proc = await _start(["run", "--ems", str(ems), "--bot", "wren", "--rules", "chapterx"], env, tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{bot['id']}> how is the harbour?")
            sends = await discord.wait_for("send", timeout=60)
        finally:
            code, stderr = await _stop(proc)
    assert code == 0, stderr
    assert "The tide is out." in sends[0]["content"]
    assert "how is the harbour?" in json.dumps(llm.requests[0]["body"])
    assert {p: p.read_bytes() for p in ems.rglob("*") if p.is_file()} == before
    assert token not in stderr and "sk-ant-c2-SECRET-KEY-0002" not in stderr
    assert "with ChapterX activation rules" in stderr  # the startup line says which rule set runs


async def test_run_continuation_reaction_and_m_command(tmp_path: Path) -> None:
    """▶️ on the bot's message and `m continue` (reply to the bot) over the real gateway and REST."""
    root = _tree(tmp_path)
    answers = [{"text": "First answer."}, {"text": " and more."}, {"text": " Even more."}]
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE]) as discord, FakeLLMServer(answers) as llm:
        proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")],
                            _env(tmp_path, discord, llm.base_url), tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> tell me")
            first = (await discord.wait_for("send", timeout=60))[0]
            await asyncio.sleep(0.3)
            await discord.user_reaction(CHANNEL, first["message_id"], ALICE["id"], "▶️")
            second = (await discord.wait_for("send", count=2, timeout=60))[1]
            await asyncio.sleep(0.3)
            cmd = await discord.user_message(CHANNEL, ALICE["id"], "m continue", reply_to=second["message_id"],
                                             reply_ping=False)
            third = (await discord.wait_for("send", count=3, timeout=60))[2]
        finally:
            code, stderr = await _stop(proc)
    assert code == 0, stderr
    assert first["content"] == "First answer."
    assert second["reply_to"] is None and second["content"].strip() == "and more."
    deletes = [a for a in discord.actions if a["type"] == "delete"]
    assert deletes == [{"type": "delete", "channel_id": CHANNEL, "message_id": cmd["id"]}]
    assert third["content"].strip() == "Even more."
    assert len(llm.requests) == 3
    assert "m continue" not in json.dumps(llm.requests[2]["body"])


async def test_run_without_message_content_intent(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    async with FakeDiscord(token=TOKEN, bot=BOT, refuse_intents=True) as discord:
        proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")],
                            _env(tmp_path, discord, "http://127.0.0.1:9"), tmp_path)
        _out, err = await asyncio.wait_for(proc.communicate(), 60)
    last = err.decode().strip().splitlines()[-1]
    assert proc.returncode == 1
    assert last.startswith("chapterx: error: Discord refused the Message Content intent")


async def test_sigterm_lets_the_running_activation_finish(tmp_path: Path) -> None:
    """SIGTERM while the LLM answer is pending: the reply is still posted, the trace written, exit 0."""
    root = _tree(tmp_path)
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE]) as discord, \
            FakeLLMServer([{"text": "Late but here.", "gate": "hold"}]) as llm:
        proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")],
                            _env(tmp_path, discord, llm.base_url), tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> slow one")

            async def request_seen() -> None:
                while not llm.requests:
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(request_seen(), 60)
            proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.5)
            llm.release("hold")
            sends = await discord.wait_for("send", timeout=30)
        finally:
            code, stderr = await _stop(proc)
    assert code == 0, stderr
    assert sends[0]["content"] == "Late but here."
    assert len((tmp_path / "logs" / "traces" / "index.jsonl").read_text().splitlines()) == 1


async def test_pins_tracked_from_gateway_events(tmp_path: Path) -> None:
    """After the first activation loaded the channel's pins, a `.sleep` pinned later (MESSAGE_UPDATE)
    gates the next mention without another pins request."""
    root = _tree(tmp_path)
    async with FakeDiscord(token=TOKEN, bot=BOT, users=[ALICE]) as discord, \
            FakeLLMServer([{"text": "Awake."}, {"text": "Should not be sent."}]) as llm:
        proc = await _start(["run", "--config", str(root / "config" / "bots" / "aria.yaml")],
                            _env(tmp_path, discord, llm.base_url), tmp_path)
        try:
            await asyncio.wait_for(discord.identified.wait(), 60)
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> are you there?")
            await discord.wait_for("send", timeout=60)
            sleep = await discord.user_message(
                CHANNEL, ALICE["id"], ".sleep\n---\nstarted_at: 2020-01-01T00:00:00Z\nmessages: 5")
            await discord.pin_message(CHANNEL, sleep["id"])
            await asyncio.sleep(0.5)
            await discord.user_message(CHANNEL, ALICE["id"], f"<@{BOT['id']}> and now?")
            await asyncio.sleep(2.0)
        finally:
            code, stderr = await _stop(proc)
    assert code == 0, stderr
    assert [a["content"] for a in discord.actions if a["type"] == "send"] == ["Awake."]
    assert len(llm.requests) == 1
    assert [a for a in discord.actions if a["type"] == "pins"] == [{"type": "pins", "channel_id": CHANNEL}]
