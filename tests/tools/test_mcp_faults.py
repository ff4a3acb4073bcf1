"""MCP servers over stdio (official SDK): a server that is missing, crashes mid-call, hangs past the
timeout or answers garbage is isolated — its tools disappear with a warning, calls get an error
result, the server is restarted with backoff — and no server process outlives shutdown or SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from chapterx.agent.plugins import PluginHost
from chapterx.tools.system import ToolSystem

SERVER = Path(__file__).parent / "fixtures" / "fault_server.py"


def _config(mode: str, pids: Path, *, command: str | None = None) -> dict[str, object]:
    return {"tool_plugins": ["notes"], "mcp_servers": [
        {"name": "fault", "command": command or sys.executable, "args": [str(SERVER), mode, str(pids)]}]}


def _pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not running any more
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


async def _host(system: ToolSystem, config: dict[str, object]) -> PluginHost:
    return await PluginHost(config, system).open(channel_id="1", guild_id="2", trigger_id="3", bot_id="aria")


async def _wait(pred: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def _names(host: PluginHost) -> set[str]:
    return {t["name"] for t in host.tools()}


async def test_missing_server_is_isolated(tmp_path: Path) -> None:
    system = ToolSystem(tmp_path / "cache", mcp_backoff=(30,))
    try:
        host = await _host(system, _config("ok", tmp_path / "pids", command=str(tmp_path / "no-such-binary")))
        assert _names(host) == {"save_note", "list_notes", "read_note", "delete_note"}  # plugins still offered
        outcome = await host.execute("echo", {"text": "hi"})
        assert outcome.error and "No MCP client found for tool: echo" in outcome.error
        assert any("MCP server fault is down" in w for w in system.warnings)
    finally:
        await system.aclose()


async def test_crash_mid_call_then_restart(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    system = ToolSystem(tmp_path / "cache", mcp_backoff=(0.2,), mcp_call_timeout=10)
    try:
        host = await _host(system, _config("crash", pids))
        assert "echo" in _names(host)
        outcome = await host.execute("echo", {"text": "hi"})
        assert outcome.error  # the crash is an error result, not an exception
        await _wait(lambda: not _alive(_pids(pids)[0]))
        await _wait(lambda: len(_pids(pids)) >= 2 and "echo" in _names(host))  # restarted with backoff
        assert any("MCP server fault is down" in w for w in system.warnings)
    finally:
        await system.aclose()
    assert not any(_alive(p) for p in _pids(pids))


async def test_hang_past_timeout_is_cut_and_restarted(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    system = ToolSystem(tmp_path / "cache", mcp_backoff=(0.2,), mcp_call_timeout=1.0)
    try:
        host = await _host(system, _config("hang", pids))
        started = time.monotonic()
        outcome = await host.execute("echo", {"text": "hi"})
        assert time.monotonic() - started < 5
        assert outcome.error and "timed out" in outcome.error
        await _wait(lambda: len(_pids(pids)) >= 2)  # the stuck server was replaced
        await _wait(lambda: not _alive(_pids(pids)[0]))
    finally:
        await system.aclose()
    assert not any(_alive(p) for p in _pids(pids))


async def test_garbage_answer_is_an_error_result(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    system = ToolSystem(tmp_path / "cache", mcp_backoff=(0.2,), mcp_call_timeout=1.0)
    try:
        host = await _host(system, _config("garbage", pids))
        outcome = await host.execute("echo", {"text": "hi"})
        assert outcome.error
        # the notes plugin keeps working beside the broken server
        saved = await host.execute("list_notes", {})
        assert saved.error is None and "No notes saved yet" in saved.output
    finally:
        await system.aclose()
    assert not any(_alive(p) for p in _pids(pids))


async def test_healthy_server_answers_and_stops_on_close(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    system = ToolSystem(tmp_path / "cache")
    host = await _host(system, _config("ok", pids))
    outcome = await host.execute("echo", {"text": "hi"})
    assert (outcome.output, outcome.error) == ("echo: hi", None)
    assert _alive(_pids(pids)[0])
    await system.aclose()
    assert not _alive(_pids(pids)[0])


DRIVER = textwrap.dedent("""
    import asyncio, signal, sys
    from pathlib import Path
    from chapterx.agent.plugins import PluginHost
    from chapterx.tools.system import ToolSystem

    async def main():
        system = ToolSystem(Path(sys.argv[1]))
        cfg = {"mcp_servers": [{"name": "a", "command": sys.executable, "args": [sys.argv[2], "ok", sys.argv[3]]},
                               {"name": "b", "command": sys.executable, "args": [sys.argv[2], "ok", sys.argv[3]]}]}
        await PluginHost(cfg, system).open(channel_id="1", guild_id="2", trigger_id=None, bot_id="x")
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        print("ready", flush=True)
        await stop.wait()
        await system.aclose()

    asyncio.run(main())
""")


def test_no_orphan_servers_after_sigterm(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen([sys.executable, str(driver), str(tmp_path / "cache"), str(SERVER), str(pids)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        servers = _pids(pids)
        assert len(servers) == 2 and all(_alive(p) for p in servers)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in servers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_alive(p) for p in servers), "an MCP server outlived the bot"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("raw, ok", [([{"name": "x"}], 0), ("nope", 0), ([{"name": "x", "command": "y"}], 1)])
def test_bad_mcp_server_entries_are_reported(raw: object, ok: int) -> None:
    from chapterx.tools.mcp import parse_servers

    servers, warnings = parse_servers(raw)
    assert len(servers) == ok
    assert len(warnings) == (1 if raw == [{"name": "x"}] else 0)


async def test_concurrent_first_activations_start_each_server_once(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    system = ToolSystem(tmp_path / "cache")
    try:
        hosts = await asyncio.gather(*(_host(system, _config("ok", pids)) for _ in range(3)))
        assert all("echo" in _names(h) for h in hosts)
        assert len(_pids(pids)) == 1
    finally:
        await system.aclose()
