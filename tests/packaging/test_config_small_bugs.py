"""Small config / validate / migrate bugs found on real configs (issue 11), each checked through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from chapterx.cli import main
from tests.conftest import FIXTURES_DIR

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"bare {token} is not JSON")


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any]:
    code = main(list(argv))
    out = capsys.readouterr().out
    return code, json.loads(out, parse_constant=_refuse_constant)


def test_config_show_json_is_strict_json_for_a_chapter2_em(capsys: pytest.CaptureFixture[str]) -> None:
    code, data = _run_json(capsys, "config", "show", "--ems", str(HARBOUR), "--bot", "gull", "--json")
    assert code == 0
    # chapter2's default history limit is .inf: written as the schemas write it, not as a bare token
    assert "Infinity" in json.dumps(data["config"])  # e.g. chapter2_prompt.message_history_max_tokens
    assert json.dumps(data, allow_nan=False)


def _reports(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    code, data = _run_json(capsys, "validate", "--json", *argv)
    return code, data["files"]


def test_chapter2_strict_only_makes_unknown_keys_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, plain = _reports(capsys, str(HARBOUR))
    assert code == 0 and not any(r["errors"] for r in plain)
    code, strict = _reports(capsys, "--strict", str(HARBOUR))
    assert code != 0
    by_em = {Path(r["path"]).name: r for r in strict}
    skua_errors = [e["message"] for e in by_em["skua"]["errors"]]
    assert any("unknown key 'unknown_setting'" in m for m in skua_errors)
    assert not any("ignored" in m for m in skua_errors), skua_errors
    # other warnings (a duplicate key, a no-op key) stay warnings under --strict
    assert any("duplicate key 'recency_window'" in w["message"] for w in by_em["skua"]["warnings"])
    assert any("'legacy' has no effect" in w["message"] for w in by_em["gull"]["warnings"])
    assert not any("duplicate" in e["message"] or "legacy" in e["message"] for r in strict for e in r["errors"])


def test_chapterx_strict_message_does_not_say_ignored(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(FIXTURES_DIR.parent.parent / "examples" / "config", tmp_path / "config")
    bot = tmp_path / "config" / "bots" / "aria.yaml"
    bot.write_text(bot.read_text() + "\nreply_on_randomm: 3\n")
    _, plain = _reports(capsys, str(bot))
    warned = [w["message"] for r in plain for w in r["warnings"] if "reply_on_randomm" in w["message"]]
    assert warned and all("it is ignored" in m for m in warned)
    code, strict = _reports(capsys, "--strict", str(bot))
    errors = [e["message"] for r in strict for e in r["errors"] if "reply_on_randomm" in e["message"]]
    assert code != 0 and errors
    assert not any("ignored" in m for m in errors), errors


@pytest.mark.parametrize("em", ["gull", "skua"])
def test_chapter2_em_config_file_is_validated_as_chapter2(em: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, reports = _reports(capsys, str(HARBOUR / em / "config.yaml"))
    assert code == 0
    assert [(r["dialect"], Path(r["path"]).name) for r in reports] == [("chapter2", em)]
    # resolved through its layers: the ems-level vendors were found (no "no vendors" complaint)
    # (the message text only: the paths it names may contain "vendors" themselves)
    assert not any("vendors" in w["message"].replace(str(HARBOUR.parent), "") for w in reports[0]["warnings"])


def test_chapter2_root_config_file_validates_every_em(capsys: pytest.CaptureFixture[str]) -> None:
    _, reports = _reports(capsys, str(HARBOUR / "config.yaml"))
    assert {Path(r["path"]).name for r in reports} == {"gull", "skua", "tern"}
    assert {r["dialect"] for r in reports} == {"chapter2"}


def test_migration_report_names_the_kind_config_show_prints(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "migrated"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    capsys.readouterr()
    report = json.loads((out / "migration-report.json").read_text())
    carried = {v["name"]: v for v in report["vendors"] if v["name"]}
    code, shown = _run_json(capsys, "config", "show", "--config", str(out / "config" / "bots" / "gull.yaml"), "--json")
    assert code == 0
    shown_kinds = {v["name"]: v["kind"] for v in shown["vendors"]}
    assert shown_kinds["openaicompletion-lan"] == "openai-completions"
    for name, kind in shown_kinds.items():
        assert carried[name]["kind"] == kind
    assert carried["openaicompletion-lan"]["source_kind"] == "openai"  # chapter2's own kind is still said
    assert "| openai-completions |" in (out / "MIGRATION_REPORT.md").read_text()
