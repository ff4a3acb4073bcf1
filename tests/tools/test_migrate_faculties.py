"""`chapterx migrate` maps chapter2 faculties onto tool plugins where it can and says, per faculty,
what cannot be mapped and what to use instead."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from chapterx.cli import main
from tests.conftest import FIXTURES_DIR

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"


def test_faculties_map_to_plugins_or_get_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ems = tmp_path / "ems"
    shutil.copytree(HARBOUR, ems)
    (ems / "skua" / "config.yaml").write_text(
        "continuation_model: claude-3-haiku\n"
        "ensembles:\n"
        "  - faculty: character\n"
        "    ensemble_format: [{format: {}}, {format: {}}]\n"
        "  - faculty: exa_search\n"
        "    ensemble_format: [{format: {}}]\n"
        "  - faculty: airtable_notes\n"
        "    airtable: {base_id: app1, table_id: tbl1, api_token: pat-x}\n"
        "    ensemble_format: [{format: {}}]\n"
    )
    out = tmp_path / "out"
    assert main(["migrate", str(ems), "--out", str(out), "--bots", "skua", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    text = json.dumps(report)
    assert "plugin_config.character" in text
    assert "nearest: an MCP search server under mcp_servers" in text
    assert "nearest: the notes plugin" in text
    bot = (out / "config" / "bots" / "skua.yaml").read_text()
    assert "tool_plugins:" in bot and "character" in bot
