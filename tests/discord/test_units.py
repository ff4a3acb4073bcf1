"""Batching, the decision rules and processBatch on a small world of our own (no ../shared needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import pytest

from chapterx.agent.decide import (
    DecideContext,
    is_dot_message,
    mentions_bot,
    parse_sleep_pin,
    reply_chain_depth,
    should_activate,
    sleep_active,
)
from chapterx.agent.queue import Event, EventQueue
from chapterx.agent.runtime import BotRuntime, RuntimeOptions
from chapterx.discord.port import Message, Pin
from chapterx.replays.recording import RecordingWorld

BOT = "900"
HUMAN = "100"
OTHER_BOT = "200"
THIRD_BOT = "300"


def _world(messages: list[dict[str, Any]] | None = None) -> RecordingWorld:
    return RecordingWorld({
        "guild_id": "1", "channel_id": "10", "bot_user_id": BOT,
        "users": [{"id": BOT, "username": "aria-bot", "bot": True}, {"id": HUMAN, "username": "alice"},
                  {"id": OTHER_BOT, "username": "echo", "bot": True}, {"id": THIRD_BOT, "username": "zed", "bot": True}],
        "members": [{"user_id": BOT, "role_ids": ["55"]}],
        "roles": [{"id": "55", "name": "aria-role"}, {"id": "66", "name": "other"}],
        "messages": messages or [],
    })


def _msg(mid: str, author: str, content: str, **kw: Any) -> Message:
    return Message(mid, "10", author, content, **kw)


def test_queue_batches_by_category() -> None:
    q = EventQueue()
    for t in ("message", "reaction", "self_activation", "message", "delete"):
        q.push(Event(t, "10"))
    assert [e.type for e in q.poll_batch()] == ["message", "reaction"]
    assert [e.type for e in q.poll_batch()] == ["self_activation"]
    assert [e.type for e in q.poll_batch()] == ["message", "delete"]
    assert q.poll_batch() == []


def test_dot_messages() -> None:
    assert is_dot_message(".hidden")
    assert is_dot_message("<@1> <@!2> .hidden")
    assert is_dot_message("<reply:@bob> .x")
    assert not is_dot_message("...well")
    assert not is_dot_message("..")
    assert not is_dot_message("plain")


def test_sleep_pin_gates() -> None:
    pin = parse_sleep_pin(Pin("1", ".sleep\n---\nstarted_at: 2025-03-01T12:00:00Z\nmessages: 3.7\n"
                                   "duration_seconds: 60", HUMAN))
    assert pin is not None and pin.messages == 3
    start = datetime(2025, 3, 1, 12, tzinfo=UTC).timestamp()
    assert not sleep_active(pin, start - 1, 0)
    assert sleep_active(pin, start + 10, 2)
    assert not sleep_active(pin, start + 10, 3)
    assert not sleep_active(pin, start + 60, 0)
    assert parse_sleep_pin(Pin("2", ".sleep\n---\nmessages: 3", HUMAN)) is None  # no started_at
    assert parse_sleep_pin(Pin("3", ".sleep\nstarted_at: 2025-03-01T12:00:00Z\nmessages: 3", HUMAN)) is None
    assert parse_sleep_pin(Pin("4", ".sleep\n---\nstarted_at: 2025-03-01T12:00:00Z\nmessages: 0", HUMAN)) is None


async def test_mention_rules_and_chain_depth() -> None:
    w = _world([{"id": "1", "author_id": BOT, "content": "earlier"},
                {"id": "2", "author_id": OTHER_BOT, "content": "hey", "reply_to": "1"},
                {"id": "3", "author_id": OTHER_BOT, "content": "again", "reply_to": "2"},
                {"id": "4", "author_id": THIRD_BOT, "content": "me too", "reply_to": "3"}])
    assert await mentions_bot(w, _msg("9", HUMAN, f"hi <@{BOT}>"))
    assert await mentions_bot(w, _msg("9", HUMAN, f"hi <@!{BOT}>"))
    assert await mentions_bot(w, _msg("9", HUMAN, "hi <@&55>"))
    assert not await mentions_bot(w, _msg("9", HUMAN, "hi <@&66>"))
    assert await mentions_bot(w, _msg("9", HUMAN, "all", mention_everyone=True))
    assert await mentions_bot(w, _msg("9", HUMAN, "re", reply_to="1", reply_ping=True))
    assert not await mentions_bot(w, _msg("9", HUMAN, "re", reply_to="1", reply_ping=False))
    assert not await mentions_bot(w, _msg("9", HUMAN, "aria-bot, hello"))
    assert await reply_chain_depth(w, _msg("9", HUMAN, "x")) == 0
    # two consecutive echo messages count once, then zed, then aria (the chain starts at the message)
    assert await reply_chain_depth(w, (await w.fetch_message("10", "4"))) == 3  # type: ignore[arg-type]


async def _decide(events: list[Event], config: Mapping[str, Any], w: RecordingWorld,
                  rolls: list[float] | None = None) -> Any:
    it = iter(rolls or [])
    ctx = DecideContext(port=w, config=config, bot_id="aria", random=lambda: next(it))
    return await should_activate(events, ctx, "10")


async def test_decision_order() -> None:
    w = _world()
    cfg = {"name": "Aria", "reply_on_random": 0}
    mention = Event("message", "10", "1", _msg("20", HUMAN, f"<@{BOT}> hi"), mentions_bot=True)
    assert (await _decide([mention], cfg, w)).activate
    assert not (await _decide([mention], {**cfg, "api_only": True}, w)).activate
    assert not (await _decide([mention], {**cfg, "may_speak": ["someone"]}, w)).activate
    assert (await _decide([mention], {**cfg, "may_speak": [" <@ARIA> "]}, w)).activate
    own = Event("message", "10", "1", _msg("21", BOT, f"<@{BOT}> me"), mentions_bot=True)
    assert not (await _decide([own], cfg, w)).activate
    m_other = Event("message", "10", "1", _msg("22", HUMAN, "m continue"))
    # an m command for someone else ends the batch, even before a mention
    assert not (await _decide([m_other, mention], cfg, w)).activate
    plain = Event("message", "10", "1", _msg("23", HUMAN, "chat"))
    d = await _decide([plain], {**cfg, "reply_on_random": 4}, w, [0.3])
    assert not d.activate and d.random_rolls == [0.3]
    d = await _decide([plain], {**cfg, "reply_on_random": 4}, w, [0.2])
    assert d.activate


async def test_decision_reads_reply_on_random_default_from_the_schema() -> None:
    """Without `reply_on_random` the schema's default (1/500) applies; no second copy in the decider."""
    from chapterx.config.model import BotConfig

    w = _world()
    plain = Event("message", "10", "1", _msg("23", HUMAN, "chat"))
    chance = 1 / BotConfig().reply_on_random
    assert (await _decide([plain], {"name": "Aria"}, w, [chance * 0.99])).activate
    assert not (await _decide([plain], {"name": "Aria"}, w, [chance])).activate


def _gated_runtime(cfg: dict[str, Any]) -> tuple[RecordingWorld, BotRuntime, asyncio.Event, list[str | None]]:
    """A runtime whose activations record their trigger and then wait for the gate (a busy channel)."""
    from chapterx.agent.activation import ActivationResult
    from chapterx.agent.state import ChannelState

    w = _world([{"id": "5", "author_id": HUMAN, "content": "hello"}])
    gate = asyncio.Event()
    calls: list[str | None] = []

    async def gated_run(channel_id: str, guild_id: str, trigger_id: str | None) -> ActivationResult:
        calls.append(trigger_id)
        await gate.wait()
        return ActivationResult(state=ChannelState())

    rt = BotRuntime(w, RuntimeOptions(bot_id="aria", provider_factory=lambda m: None, load_config=lambda texts: cfg))
    rt._run = gated_run  # type: ignore[method-assign]
    return w, rt, gate, calls


@pytest.mark.parametrize(("limit", "answered"), [(None, ["30", "32"]), (2, ["30", "31", "32"]), (0, ["30"])])
async def test_runtime_queues_busy_channel_triggers(limit: int | None, answered: list[str]) -> None:
    """Past upstream (runtime.md): a trigger for a busy channel is answered afterwards, up to
    `max_queued_replies` (default 1: the newest waits, older ones make room); 0 drops it as upstream."""
    cfg: dict[str, Any] = {"name": "Aria", "reply_on_random": 0}
    if limit is not None:
        cfg["max_queued_replies"] = limit
    _w, rt, gate, calls = _gated_runtime(cfg)
    first = await rt.process_batch([Event("message", "10", "1", _msg("30", HUMAN, f"<@{BOT}> a"), mentions_bot=True)])
    second = await rt.process_batch([Event("message", "10", "1", _msg("31", HUMAN, f"<@{BOT}> b"), mentions_bot=True)])
    third = await rt.process_batch([Event("message", "10", "1", _msg("32", HUMAN, f"<@{BOT}> c"), mentions_bot=True)])
    assert first.activated and second.should_activate and not second.activated
    assert second.queued == (limit != 0) and third.queued == (limit != 0)
    gate.set()
    await rt.idle()
    assert calls == answered
    assert "10" not in rt.active_channels and rt.waiting == {}


async def test_m_command_is_queued_even_with_no_queue() -> None:
    """`m` commands are never lost: queued for a busy channel even with `max_queued_replies: 0`."""
    w, rt, gate, calls = _gated_runtime({"name": "Aria", "reply_on_random": 0, "max_queued_replies": 0})
    await rt.process_batch([Event("message", "10", "1", _msg("30", HUMAN, f"<@{BOT}> a"), mentions_bot=True)])
    cmd = w.add_message("10", {"id": "31", "author_id": HUMAN, "content": f"m continue <@{BOT}>"})
    out = await rt.process_batch([Event("message", "10", "1", cmd, mentions_bot=True)])
    assert out.queued
    gate.set()
    await rt.idle()
    assert calls == ["30", "31"]


async def test_own_message_is_never_the_trigger() -> None:
    """Past upstream: the bot's fresh post and a user's mention in one batch: the mention triggers."""
    w = _world([{"id": "5", "author_id": HUMAN, "content": "hello"}])
    rt = BotRuntime(w, RuntimeOptions(bot_id="aria", provider_factory=lambda m: None,
                                      load_config=lambda texts: {"name": "Aria", "reply_on_random": 0}))
    started: list[str | None] = []

    async def fake_activate(channel_id: str, guild_id: str, trigger_id: str | None, reason: str,
                            events: Any) -> None:
        started.append(trigger_id)

    rt._activate = fake_activate  # type: ignore[method-assign,assignment]
    own = _msg("40", BOT, "my fresh answer")
    mention = _msg("41", HUMAN, f"<@{BOT}> and another thing")
    out = await rt.process_batch([Event("message", "10", "1", own), Event("message", "10", "1", mention,
                                                                         mentions_bot=True)])
    await rt.idle()
    assert out.activated and out.activation is not None
    assert out.activation["trigger_message_id"] == "41"
    assert started == ["41"]


async def test_m_get_context_sends_a_dump() -> None:
    w = _world([{"id": "5", "author_id": HUMAN, "content": "first line"},
                {"id": "6", "author_id": BOT, "content": "bot reply"},
                {"id": "7", "author_id": HUMAN, "content": "third line"}])
    rt = BotRuntime(w, RuntimeOptions(bot_id="aria", provider_factory=lambda m: None,
                                      load_config=lambda texts: {"name": "Aria", "reply_on_random": 0,
                                                                 "continuation_model": "claude-x", "mode": "prefill"}))
    cmd = w.add_message("10", {"id": "8", "author_id": HUMAN, "content": f"m get_context 2 <@{BOT}>"})
    out = await rt.process_batch([Event("message", "10", "1", cmd, mentions_bot=True)])
    assert out.should_activate and not out.activated
    assert [a["type"] for a in w.actions] == ["delete", "send"]
    assert w.actions[0]["message_id"] == "8"
    send = w.actions[1]
    assert send["content"] == ".context dump (2 messages)"
    (f,) = send["files"]
    assert f["name"].startswith("context-Aria-") and f["name"].endswith(".txt")
    text = f["content"]
    assert text.startswith("# Context for Aria in #10\n# Messages: 2 (requested: 2)\n# Model: claude-x\n# Mode: prefill\n")
    assert "first line" not in text and "bot reply" in text and "third line" in text
    assert "get_context" not in text.split("# === MESSAGES ===")[1]


def test_deleted_bot_message_drops_tool_log_entries(tmp_path: Any) -> None:
    from chapterx.agent.toollog import append_entries, load_entries

    entry = {"call": {"id": "t1", "name": "save_note", "input": {}}, "result": {"output": "ok"}}
    append_entries(tmp_path, "aria", "10", [entry], ["77"])
    assert len(load_entries(tmp_path, "aria", "10")) == 1
    rt = BotRuntime(_world(), RuntimeOptions(bot_id="aria", provider_factory=lambda m: None,
                                             load_config=lambda texts: {"name": "Aria"}, tool_log_dir=tmp_path))
    asyncio.run(rt.process_batch([Event("delete", "10", "1", data={"message_id": "77", "author_id": BOT})]))
    assert load_entries(tmp_path, "aria", "10") == []


async def test_deferred_retry_after_transient_failure() -> None:
    from chapterx.agent.activation import ActivationResult
    from chapterx.agent.state import ChannelState
    from chapterx.llm.errors import ProviderError

    w = _world([{"id": "5", "author_id": HUMAN, "content": "hello"}])
    clock = [1000.0]
    outcomes: list[BaseException | None] = [ProviderError("529 overloaded", status=529, retryable=True), None]
    triggers: list[str | None] = []

    async def fake_run(channel_id: str, guild_id: str, trigger_id: str | None) -> ActivationResult:
        triggers.append(trigger_id)
        return ActivationResult(state=ChannelState(), error=outcomes.pop(0))

    cfg = {"name": "Aria", "reply_on_random": 0, "deferred_retries": True}
    rt = BotRuntime(w, RuntimeOptions(bot_id="aria", provider_factory=lambda m: None, load_config=lambda t: cfg,
                                      now=lambda: clock[0]))
    rt._run = fake_run  # type: ignore[method-assign]
    first = await rt.process_batch([Event("message", "10", "1", _msg("40", HUMAN, f"<@{BOT}> a"), mentions_bot=True)])
    assert first.task is not None
    await first.task
    assert w.actions == [{"type": "reaction", "channel_id": "10", "message_id": "40", "emoji": "⏳", "batch": 0}]
    pending = rt.deferred.pending["10"]
    assert pending.delay_ms == 30000 and pending.error_type == "server"
    assert rt.poll_deferred() == 0
    clock[0] += 30
    assert rt.poll_deferred() == 1
    batch = rt.queue.poll_batch()
    assert [e.type for e in batch] == ["self_activation"]
    retry = await rt.process_batch(batch)
    assert retry.activation is not None and retry.activation["reason"] == "timer"
    assert retry.task is not None
    await retry.task
    assert triggers == ["40", None]
    assert rt.deferred.attempts == {}


def test_deferred_queue_backoff_and_cooldown() -> None:
    from chapterx.agent.queue import DeferredQueue, transient_error_type

    q = DeferredQueue()
    err = TimeoutError("request timed out")
    assert transient_error_type(err) == "timeout"
    assert transient_error_type(ValueError("bad prompt")) is None
    delays = []
    for _ in range(5):
        r = q.schedule("c", "g", None, err, "timeout", 0.0)
        assert r is not None
        assert q.schedule("c", "g", None, err, "timeout", 0.0) is None  # one per channel
        delays.append(r.delay_ms)
        q.due(10**6)
    assert delays == [30000, 60000, 120000, 240000, 300000]
    assert q.schedule("c", "g", None, err, "timeout", 0.0) is None  # sixth failure: cooldown
    assert q.schedule("c", "g", None, err, "timeout", 3599.0) is None
    assert q.schedule("c", "g", None, err, "timeout", 3601.0) is not None


@pytest.mark.parametrize(("setting", "reactions"), [(None, ["⚠️"]), ("", []), ("🔥", ["🔥"])])
async def test_failed_activation_shows_error_reaction(setting: str | None, reactions: list[str]) -> None:
    """A failed activation reacts on its trigger (`error_reaction`, default ⚠️; "" turns it off)."""
    from chapterx.agent.activation import ActivationResult
    from chapterx.agent.state import ChannelState

    w = _world([{"id": "5", "author_id": HUMAN, "content": "hello"}])

    async def failing_run(channel_id: str, guild_id: str, trigger_id: str | None) -> ActivationResult:
        return ActivationResult(state=ChannelState(), error=RuntimeError("every provider attempt failed"))

    cfg: dict[str, Any] = {"name": "Aria", "reply_on_random": 0}
    if setting is not None:
        cfg["error_reaction"] = setting
    rt = BotRuntime(w, RuntimeOptions(bot_id="aria", provider_factory=lambda m: None, load_config=lambda texts: cfg))
    rt._run = failing_run  # type: ignore[method-assign]
    trigger = w.add_message("10", {"id": "30", "author_id": HUMAN, "content": f"<@{BOT}> hi"})
    await rt.process_batch([Event("message", "10", "1", trigger, mentions_bot=True)])
    await rt.idle()
    assert [a["emoji"] for a in w.actions if a["type"] == "reaction" and a["message_id"] == "30"] == reactions


async def test_queued_triggers_are_bounded_per_channel() -> None:
    """`m` commands are always queued, but a flood stops at MAX_WAITING per channel."""
    from chapterx.agent.runtime import MAX_WAITING

    w, rt, gate, calls = _gated_runtime({"name": "Aria", "reply_on_random": 0})
    await rt.process_batch([Event("message", "10", "1", _msg("30", HUMAN, f"<@{BOT}> a"), mentions_bot=True)])
    for i in range(MAX_WAITING + 5):
        cmd = w.add_message("10", {"id": str(100 + i), "author_id": HUMAN, "content": f"m continue <@{BOT}>"})
        await rt.process_batch([Event("message", "10", "1", cmd, mentions_bot=True)])
    assert len(rt.waiting["10"]) == MAX_WAITING
    gate.set()
    await rt.idle()
    assert calls == ["30", *(str(100 + i) for i in range(MAX_WAITING))]
