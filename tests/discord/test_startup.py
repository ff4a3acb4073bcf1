"""Startup checks of `chapterx run` (in process, no network): layouts, token files, one-line errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from chapterx.app import prepare_bot
from chapterx.errors import UserError
from tests.conftest import FIXTURES_DIR

TOKEN = "MTIzNDU2Nzg5.fake-discord-TOKEN.startup"


def _deploy(tmp_path: Path) -> Path:
    root = tmp_path / "deploy"
    shutil.copytree(FIXTURES_DIR / "discord" / "tree", root)
    return root


def test_absolute_token_file_and_bot_file(tmp_path: Path) -> None:
    root = _deploy(tmp_path)
    tok = tmp_path / "t" / "aria_token"
    tok.parent.mkdir()
    tok.write_text(TOKEN + "\n")
    plan = prepare_bot(bot_file=root / "config" / "bots" / "aria.yaml", env={"DISCORD_TOKEN_FILE": str(tok)})
    assert plan.token == TOKEN
    assert plan.model == "claude-sonnet-4-5-20250929"
    assert TOKEN not in repr(plan)


def test_bot_name_layout_token_under_config_path(tmp_path: Path) -> None:
    root = _deploy(tmp_path)
    (root / "config" / "bots" / "aria_discord_token").write_text(TOKEN)
    plan = prepare_bot(env={"CONFIG_PATH": str(root / "config"), "BOT_NAME": "aria"})
    assert plan.token == TOKEN and plan.bot_id == "aria"


def test_ems_layout_token_in_bot_folder(tmp_path: Path) -> None:
    ems = tmp_path / "ems"
    (ems / "aria").mkdir(parents=True)
    shutil.copy(FIXTURES_DIR / "discord" / "tree" / "config" / "shared.yaml", ems / "config.yaml")
    shutil.copy(FIXTURES_DIR / "discord" / "tree" / "config" / "bots" / "aria.yaml", ems / "aria" / "config.yaml")
    (ems / "aria" / "discord_token").write_text(TOKEN)
    plan = prepare_bot(env={"EMS_PATH": str(ems), "BOT_NAME": "aria"})
    assert plan.token == TOKEN and not plan.chapter2


def test_missing_token_file(tmp_path: Path) -> None:
    root = _deploy(tmp_path)
    with pytest.raises(UserError) as info:
        prepare_bot(bot_file=root / "config" / "bots" / "aria.yaml",
                    env={"DISCORD_TOKEN_FILE": str(tmp_path / "missing")})
    assert info.value.exit_code == 2
    assert str(info.value) == f"Discord token file not found: {tmp_path / 'missing'}"


def test_empty_token_file(tmp_path: Path) -> None:
    root = _deploy(tmp_path)
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(UserError, match="empty"):
        prepare_bot(bot_file=root / "config" / "bots" / "aria.yaml", env={"DISCORD_TOKEN_FILE": str(tmp_path / "empty")})


def test_bad_config_names_the_file(tmp_path: Path) -> None:
    root = _deploy(tmp_path)
    bot = root / "config" / "bots" / "aria.yaml"
    bot.write_text("name: [unclosed\n")
    (tmp_path / "tok").write_text(TOKEN)
    with pytest.raises(UserError) as info:
        prepare_bot(bot_file=bot, env={"DISCORD_TOKEN_FILE": str(tmp_path / "tok")})
    assert "aria.yaml" in str(info.value)
    assert "\n" not in str(info.value)


def test_no_vendor_for_model(tmp_path: Path) -> None:
    root = _deploy(tmp_path)
    bot = root / "config" / "bots" / "aria.yaml"
    bot.write_text(bot.read_text().replace("claude-sonnet-4-5-20250929", "mystery-model-9"))
    (tmp_path / "tok").write_text(TOKEN)
    with pytest.raises(UserError, match="mystery-model-9"):
        prepare_bot(bot_file=bot, env={"DISCORD_TOKEN_FILE": str(tmp_path / "tok")})


def test_config_cache_follows_file_changes(tmp_path: Path) -> None:
    import os

    from chapterx.app import CachedConfigLoader

    root = _deploy(tmp_path)
    (tmp_path / "tok").write_text(TOKEN)
    bot = root / "config" / "bots" / "aria.yaml"
    loader = CachedConfigLoader(prepare_bot(bot_file=bot, env={"DISCORD_TOKEN_FILE": str(tmp_path / "tok")}))
    first = loader("1", [])
    assert loader("1", []) is first  # cached
    assert loader("1", ["max_tokens: 77"])["max_tokens"] == 77  # pins are part of the key
    bot.write_text(bot.read_text() + "max_tokens: 55\n")
    st = bot.stat()
    os.utime(bot, (st.st_atime, st.st_mtime + 5))
    assert loader("1", [])["max_tokens"] == 55
    guild = root / "config" / "guilds" / "1.yaml"
    guild.parent.mkdir(exist_ok=True)
    guild.write_text("temperature: 0.3\n")
    os.utime(guild.parent, (st.st_atime, st.st_mtime + 10))
    assert loader("1", [])["temperature"] == 0.3


def test_a_refused_pin_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A pin whose `system_prompt_file` names the token is refused, and the running bot says so."""
    from chapterx.app import CachedConfigLoader

    root = _deploy(tmp_path)
    bot = root / "config" / "bots" / "aria.yaml"
    (bot.parent / "aria_discord_token").write_text(TOKEN)
    loader = CachedConfigLoader(prepare_bot(bot_file=bot, env={}))
    pin = "system_prompt: ''\nsystem_prompt_file: aria_discord_token"
    with caplog.at_level("WARNING", logger="chapterx.run"):
        config = loader("1", [pin])
        loader("1", [pin, "max_tokens: 9"])
    assert not config.get("system_prompt") and TOKEN not in repr(dict(config))
    refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refused) == 1 and "pinned .config" in refused[0] and "system_prompt_file" in refused[0]
    assert TOKEN not in caplog.text
