"""Tool-call overhead: a plugin call (notes, state written atomically) and an MCP call over stdio
(official SDK, the fault-test server in `ok` mode), through `PluginHost.execute`.

Run: `.venv/bin/python bench/bench_tools.py [N]`; prints median and p95 per call in ms.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chapterx.agent.plugins import PluginHost
from chapterx.tools.system import ToolSystem

SERVER = Path(__file__).resolve().parents[1] / "tests" / "tools" / "fixtures" / "fault_server.py"


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        system = ToolSystem(root / "cache")
        cfg = {"tool_plugins": ["notes"], "mcp_servers": [
            {"name": "ok", "command": sys.executable, "args": [str(SERVER), "ok", str(root / "pids")]}]}
        started = time.perf_counter()
        host = await PluginHost(cfg, system).open(channel_id="c", guild_id="g", trigger_id="m", bot_id="b")
        print(f"MCP server start + first open: {(time.perf_counter() - started) * 1000:.0f} ms")
        for label, name, args in (("notes save_note", "save_note", {"content": "x"}),
                                  ("MCP echo", "echo", {"text": "hi"})):
            times = []
            for _ in range(n):
                t = time.perf_counter()
                out = await host.execute(name, args)
                times.append((time.perf_counter() - t) * 1000)
                assert out.error is None
            times.sort()
            print(f"{label}: median {statistics.median(times):.2f} ms, p95 {times[int(len(times) * 0.95)]:.2f} ms "
                  f"(n={n})")
        await system.aclose()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200))
