"""`chapterx validate` on the tools part of a config: unknown plugin names (e.g. fork-only ones)
are one warning with the list of known plugins; bad scopes and unusable MCP entries are warned."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chapterx.tools.plugins import known_names
from chapterx.tools.validate import tool_warnings


def _root(tmp_path: Path, bot: str) -> Path:
    (tmp_path / "bots").mkdir()
    (tmp_path / "shared.yaml").write_text("vendors:\n  anthropic:\n    config:\n      anthropic_api_key: sk-x\n")
    (tmp_path / "bots" / "aria.yaml").write_text("name: Aria\ncontinuation_model: claude-sonnet-4-5-20250929\n" + bot)
    return tmp_path


def test_unknown_plugin_warns_with_known_list(tmp_path: Path) -> None:
    root = _root(tmp_path, "tool_plugins: [notes, brave-search]\n")
    proc = subprocess.run([sys.executable, "-m", "chapterx", "validate", str(root)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if "brave-search" in x)
    assert line.startswith(f"{root / 'bots' / 'aria.yaml'}:3: warning: unknown tool plugin 'brave-search'")
    assert "known plugins: " + ", ".join(known_names()) in line
    assert "Traceback" not in proc.stdout + proc.stderr


def test_known_plugins_are_quiet_and_other_mistakes_are_named() -> None:
    assert tool_warnings({"tool_plugins": ["notes", "timer", "upload"]}) == []
    problems = [m for m, _ in tool_warnings({"tool_plugins": "notes",
                                             "plugin_config": {"notes": {"state_scope": "room"}},
                                             "mcp_servers": [{"name": "x"}]})]
    assert problems == ["tool_plugins must be a list of plugin names",
                        "plugin_config.notes.state_scope 'room' is not one of global, channel, epic, off "
                        "(channel is used)",
                        "mcp_servers[0]: needs at least a command; skipped"]
