"""Plugin behaviour the vectors do not pin down: fixed quirks asserted positively, state files,
timers across restarts, path confinement of `upload`, and a broken MCP server during a whole
activation (the bot still answers)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from chapterx.agent.plugins import PluginHost
from chapterx.tools.plugins.upload import safe_local_path
from chapterx.tools.state import ScopedState
from chapterx.tools.system import ToolSystem
from chapterx.tools.timers import TimerScheduler
from tests.conftest import SHARED_DIR, shared_path

NOW = 1740834000.0  # 2025-03-01T13:00:00Z


async def _host(system: ToolSystem, config: dict[str, Any], trigger: str = "m1", ids: tuple[str, ...] = ()) -> PluginHost:
    return await PluginHost(config, system).open(channel_id="c1", guild_id="g1", trigger_id=trigger, bot_id="aria",
                                                 context_message_ids=ids)


async def test_two_notes_in_one_millisecond_get_distinct_ids(tmp_path: Path) -> None:
    system = ToolSystem(tmp_path / "cache", now=lambda: NOW)
    host = await _host(system, {"tool_plugins": ["notes"]})
    await host.execute("save_note", {"content": "one"})
    await host.execute("save_note", {"content": "two"})
    state = json.loads((tmp_path / "cache/plugins/notes/channel/c1.json").read_text())
    ids = [n["id"] for n in state["state"]["notes"]]
    assert len(set(ids)) == 2 and ids[0] == "note_m7q7m740"
    deleted = await host.execute("delete_note", {"id": ids[0]})
    assert deleted.output == f"Note {ids[0]} will be deleted"
    left = json.loads((tmp_path / "cache/plugins/notes/channel/c1.json").read_text())["state"]["notes"]
    assert [n["content"] for n in left] == ["two"]  # the other same-millisecond note survives


async def test_epic_notes_are_read_back_and_rolled_back(tmp_path: Path) -> None:
    system = ToolSystem(tmp_path / "cache", now=lambda: NOW)
    cfg = {"tool_plugins": ["notes"], "plugin_config": {"notes": {"state_scope": "epic"}}}
    host = await _host(system, cfg, "m1", ("m0", "m1"))
    await host.execute("save_note", {"content": "remember me"})
    later = await _host(system, cfg, "m2", ("m0", "m1", "m2"))
    assert "remember me" in (await later.execute("list_notes", {})).output
    assert any("remember me" in i.content for i in later.injections())
    # the message that created the note is gone: its event no longer applies
    forked = await _host(system, cfg, "m3", ("m0", "m3"))
    assert (await forked.execute("list_notes", {})).output.startswith("No notes saved yet")


def test_state_writes_are_atomic_and_scoped(tmp_path: Path) -> None:
    state = ScopedState(tmp_path, "notes", "global", "c1")
    state.set({"notes": []}, "m1", NOW)
    assert json.loads((tmp_path / "notes/global.json").read_text()) == {"notes": []}
    assert not [p for p in (tmp_path / "notes").iterdir() if p.name.startswith(".")]  # no temp files left
    assert ScopedState(tmp_path, "notes", "off", "c1").get() is None


async def test_missed_timer_fires_once_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "timers.json"
    first = TimerScheduler(path, now=lambda: NOW, suffix=lambda: "abcd")
    timer = first.schedule(bot_id="aria", channel_id="c1", guild_id="g1", delay_minutes=1, context_note="check it",
                           message_id="m1")
    fired: list[str] = []
    later = NOW + 3600  # the bot was down when the timer was due
    second = TimerScheduler(path, now=lambda: later, on_fire=lambda t: fired.append(t.id))
    second.check_due()
    third = TimerScheduler(path, now=lambda: later + 60, on_fire=lambda t: fired.append(t.id))
    third.check_due()
    assert fired == [timer.id]
    assert json.loads(path.read_text()) == {"timers": [], "version": 1}


@pytest.mark.parametrize("delay", ["soon", None, True, float("nan")])
async def test_non_numeric_delay_is_refused_and_nothing_is_stored(tmp_path: Path, delay: Any) -> None:
    system = ToolSystem(tmp_path / "cache", now=lambda: NOW)
    host = await _host(system, {"tool_plugins": ["timer"]})
    out = await host.execute("schedule_wake", {"delay_minutes": delay, "context_note": "wake alice up"})
    assert out.output == "Error: delay_minutes must be a number of minutes (0.05-1440)"
    assert not (tmp_path / "cache/timers.json").exists()


def test_corrupt_timers_file_is_one_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "timers.json"
    path.write_text("{not json")
    sched = TimerScheduler(path, now=lambda: NOW)
    assert sched.timers == [] and "unreadable" in caplog.text


@pytest.mark.parametrize("raw, allowed", [
    ("outputs/report.csv", True), ("../outside.txt", False), ("/etc/passwd", False),
    ("discord_token", False), ("config/.env", False), ("outputs/../discord_token", False),
])
def test_upload_paths_stay_inside_the_em(tmp_path: Path, raw: str, allowed: bool) -> None:
    assert (safe_local_path(tmp_path, raw) is not None) is allowed


async def test_upload_refuses_the_bot_token(tmp_path: Path) -> None:
    (tmp_path / "discord_token").write_text("secret-token")
    system = ToolSystem(tmp_path / "cache", base_dir=tmp_path)
    host = await _host(system, {"tool_plugins": ["upload"]})
    out = await host.execute("upload_file_to_discord", {"path": "discord_token"})
    assert out.output.startswith("Error: Path not allowed: discord_token") and "secret-token" not in out.output


async def test_unknown_plugin_is_warned_with_the_known_list(tmp_path: Path) -> None:
    host = await _host(ToolSystem(tmp_path / "cache"), {"tool_plugins": ["notes", "brave-search"]})
    assert [t["name"] for t in host.tools()][:1] == ["save_note"]
    assert any("brave-search" in w and "notes" in w and "timer" in w for w in host.warnings)


async def test_bot_answers_with_a_broken_mcp_server() -> None:
    """A whole activation (tool-plugins case) with an MCP server that cannot start: same Discord
    actions and tool results as without it, plus a warning."""
    if not (SHARED_DIR / "golden" / "chapterx" / "tool-plugins.json").exists():
        pytest.skip("tool-plugins.json not present")
    from chapterx.replays.tool_plugins import run_case

    data = json.loads(shared_path("golden", "chapterx", "tool-plugins.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == "tp-notes-existing-read-delete-prefill")
    inp = copy.deepcopy(case["input"])
    inp["files"]["config/bots/aria.yaml"] += "mcp_servers:\n  - name: gone\n    command: /nonexistent/mcp-server\n"
    got = await run_case(inp)
    assert got["discord_actions"] == case["expected"]["discord_actions"]
    assert got["state_files"] == case["expected"]["state_files"]
    assert any("MCP server gone is down" in w for w in got["warnings"])


async def test_deleting_a_missing_note_says_so(tmp_path: Path) -> None:
    system = ToolSystem(tmp_path / "cache", now=lambda: NOW)
    host = await _host(system, {"tool_plugins": ["notes"]})
    assert (await host.execute("delete_note", {"id": "note_nope"})).output == "Note not found: note_nope"
    await host.execute("save_note", {"content": "keep"})
    assert (await host.execute("delete_note", {"id": "note_nope"})).output == "Note not found: note_nope"
    assert "keep" in (await host.execute("list_notes", {})).output


async def test_sleep_without_pinning_reports_that_sleep_is_not_active(tmp_path: Path) -> None:
    """A connection that cannot pin must not make the model believe it is asleep."""
    system = ToolSystem(tmp_path / "cache", now=lambda: NOW)
    host = await _host(system, {"tool_plugins": ["sleep", "config"]})
    sent: list[str] = []

    async def send(text: str) -> list[str]:
        sent.append(text)
        return ["m9"]

    host._ctx["send"] = send
    out = await host.execute("go_to_sleep", {"duration": "30m"})
    assert sent and out.output.startswith("Error: .sleep message sent but could not pin it")
    cfg = await host.execute("set_config", {"key": "temperature", "value": 0.5})
    assert cfg.error == "this Discord connection cannot pin messages"


async def test_run_timers_fires_missed_timers_at_startup_then_stops(tmp_path: Path) -> None:
    """The bot's timer loop: a timer due during downtime fires at once, on its own bot only."""
    import asyncio

    path = tmp_path / "cache" / "timers.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"timers": [
        {"botId": "aria", "channelId": "c1", "guildId": "g1", "createdByMessageId": "m1", "createdAt": 1,
         "id": "timer_a", "triggerAt": 1000, "contextNote": "missed"},
        {"botId": "other", "channelId": "c1", "guildId": "g1", "createdByMessageId": "m1", "createdAt": 1,
         "id": "timer_b", "triggerAt": 1000, "contextNote": "not mine"}], "version": 1}))
    fired: list[str] = []
    system = ToolSystem(tmp_path / "cache", now=lambda: NOW, on_timer=lambda t: fired.append(t.id), bot_id="aria")
    stop = asyncio.Event()
    loop = asyncio.create_task(system.run_timers(stop, interval=0.05))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert fired == ["timer_a"]
    assert [t["id"] for t in json.loads(path.read_text())["timers"]] == ["timer_b"]
