"""The rule-set choice: `chapterx migrate` writes `activation_rules` (+ `chapter2_em`) and says which rule
set each bot runs with; a migrated bot's chapter2 config equals the em's; the opt-in name fix."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from ruamel.yaml import YAML

from chapterx.cli import main
from chapterx_compat.chapter2.load import load
from chapterx_compat.chapter2.runtime.activation import name_matches
from chapterx_compat.chapter2.runtime.rules import config_from_bot
from tests.conftest import FIXTURES_DIR

EMS = FIXTURES_DIR / "discord" / "chapter2" / "ems"


def _migrate(tmp_path: Path, *extra: str) -> tuple[dict, dict, str]:
    ems = tmp_path / "ems"
    shutil.copytree(EMS, ems)
    out = tmp_path / "out"
    assert main(["migrate", str(ems), "--out", str(out), *extra]) == 0
    bot = YAML(typ="safe").load((out / "config" / "bots" / "wren.yaml").read_text())
    report = json.loads((out / "migration-report.json").read_text())
    return bot, report, (out / "MIGRATION_REPORT.md").read_text()


def test_migrate_keeps_chapter2_rules_by_default(tmp_path: Path) -> None:
    bot, report, md = _migrate(tmp_path)
    assert bot["activation_rules"] == "chapter2"
    em = bot["chapter2_em"]
    assert em["name"] == "Wren" and em["split_message"] is False and em["reply_on_random"] == 0
    assert "vendors" not in em and "discord_token" not in em  # secrets stay in shared.yaml / the token file
    assert report["ems"][0]["activation_rules"] == "chapter2"
    assert "activation rules: chapter2" in md
    token = (EMS / "wren" / "discord_token").read_text().strip()
    assert token not in (tmp_path / "out" / "config" / "bots" / "wren.yaml").read_text()
    # the migrated bot's chapter2 config is the em's (vendors aside: they come from the ChapterX tree)
    rebuilt = config_from_bot(bot, tmp_path / "out" / "config" / "bots" / "wren.yaml", "wren")
    original = load(tmp_path / "ems", "wren").config
    skip = {"vendors", "folder"}
    assert {k: v for k, v in rebuilt.em.model_dump().items() if k not in skip} == \
        {k: v for k, v in original.em.model_dump().items() if k not in skip}
    assert rebuilt.interfaces[0].model_dump(exclude={"discord_token"}) == \
        original.interfaces[0].model_dump(exclude={"discord_token"})


def test_migrate_rules_chapterx(tmp_path: Path) -> None:
    bot, report, md = _migrate(tmp_path, "--rules", "chapterx")
    assert bot["activation_rules"] == "chapterx" and "chapter2_em" not in bot
    assert report["ems"][0]["activation_rules"] == "chapterx"
    assert "activation rules: chapterx" in md


def test_run_dispatch_reads_activation_rules(tmp_path: Path) -> None:
    from chapterx.app import prepare_bot
    from chapterx_compat.chapter2.runtime.app import rules_of

    _migrate(tmp_path)
    bot_file = tmp_path / "out" / "config" / "bots" / "wren.yaml"
    plan = prepare_bot(bot_file=bot_file, env={"ANTHROPIC_API_KEY": "sk-test-not-real-0000"})
    assert rules_of(plan) == "chapter2"
    text = bot_file.read_text().replace("activation_rules: chapter2", "activation_rules: chapterx")
    bot_file.write_text(text)
    plan = prepare_bot(bot_file=bot_file, env={"ANTHROPIC_API_KEY": "sk-test-not-real-0000"})
    assert rules_of(plan) == "chapterx"


def test_name_rule_quirks_and_the_opt_in_fix() -> None:
    names = ["wren"]
    # chapter2's rule (the default): punctuation after the name, or a word before it, defeats it
    assert not name_matches("good night wren!", names)
    assert not name_matches("hey wren, tide?", names)
    assert name_matches("wren, tide?", names) and name_matches("good night wren", names)
    assert not name_matches("the wren sings at dawn today, they say", names)
    # fix_name_punctuation: true answers those, still not a name buried mid-sentence
    assert name_matches("good night wren!", names, fix_punctuation=True)
    assert name_matches("hey wren, tide?", names, fix_punctuation=True)
    assert not name_matches("the quick fox saw a wren sing at dawn today", names, fix_punctuation=True)
    assert not name_matches("wrenches are in the shed", ["wren"], fix_punctuation=True) or \
        name_matches("wrenches are in the shed", ["wren"])  # chapter2 itself matches word characters after it


def test_fix_key_in_a_channel_pin_changes_the_golden_quirk_case() -> None:
    """The `name-end-punctuation` vector with `fix_name_punctuation: true` in the em config: the em answers."""
    from chapterx.replays.chapter2_runtime import run_case
    from tests.chapter2_runtime.test_golden_runtime import _cases

    case = json.loads(json.dumps(_cases()["name-end-punctuation"]))
    assert case["expected"]["events"][0]["should_reply"] is False  # the quirk, reproduced by default
    inp = case["input"]
    inp["files"]["ems/wren/config.yaml"] += "fix_name_punctuation: true\n"
    inp["completions"] = [" good night"]
    got = asyncio.run(run_case(inp))
    assert got["events"][0]["should_reply"] is True
    assert got["events"][0]["actions"] == [{"type": "send", "channel_id": 1100000000000000200,
                                            "content": "good night"}]
