"""Traces record every tool execution on both tool paths (inline prefill and native chat), with
the error of a failed call, through the real trace writer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chapterx.replays.batches import run_case
from chapterx.replays.tool_plugins import ToolHooks
from tests.conftest import SHARED_DIR, shared_path


async def _traced(case_id: str, tmp_path: Path) -> list[dict[str, Any]]:
    if not (SHARED_DIR / "golden" / "chapterx" / "tool-plugins.json").exists():
        pytest.skip("tool-plugins.json not present")
    from chapterx.trace.writer import TraceWriter

    data = json.loads(shared_path("golden", "chapterx", "tool-plugins.json").read_text(encoding="utf-8"))
    case = next(c for c in data["cases"] if c["id"] == case_id)
    hooks = ToolHooks(case["input"])
    options = hooks.options()
    setup = options.on_setup
    writer = TraceWriter(tmp_path / "logs", background=False)

    async def traced_setup(run: Any) -> None:
        await setup(run)
        run.runtime.opts.trace_writer = writer

    options.on_setup = traced_setup
    await run_case(case["input"], options)
    traces = [json.loads(p.read_text()) for p in sorted((tmp_path / "logs" / "traces").rglob("*.json"))
              if p.name != "index.json"]
    return [t for t in traces if isinstance(t, dict) and "toolExecutions" in t]


async def test_inline_and_mcp_tool_executions_are_traced(tmp_path: Path) -> None:
    traces = await _traced("tp-mcp-echo-add-visible-prefill", tmp_path)
    tools = [e for t in traces for e in t["toolExecutions"]]
    assert [e["toolName"] for e in tools] == ["echo", "add"]
    assert all(e["sentToDiscord"] for e in tools) and tools[0]["output"] == "echo: hi there"


async def test_native_failed_call_is_traced_with_its_error(tmp_path: Path) -> None:
    traces = await _traced("tp-mcp-boom-jsonrpc-error-native", tmp_path)
    tools = [e for t in traces for e in t["toolExecutions"]]
    assert [e["toolName"] for e in tools] == ["boom"]
    assert tools[0]["error"] == "MCP error -32000: boom exploded"
