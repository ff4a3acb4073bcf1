"""Loader behaviour beyond the golden vectors: layouts, env vars, providers_config, pins, masking, CLI shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chapterx.config import schema as sch
from chapterx.config.env import Settings
from chapterx.config.errors import ConfigError
from chapterx.config.load import resolve_bot_config
from chapterx.config.pins import extract_config_pins
from chapterx.config.secrets import mask_secrets
from chapterx.config.validate import validate_paths
from tests.config.conftest import run_cli, write_tree

GOOD = "name: Aria\ncontinuation_model: claude-sonnet-4-5-20250929\n"

# Upstream's whitelist (reference section 4.15), written out independently of our schema.
UPSTREAM_WHITELIST = set("""authorized_roles bot_reply_chain_depth_emote cache_ttl context_prefix context_prefix_file
continuation_emoji continuation_model debug_thinking deferred_retries discord_backoff_max frequency_penalty
generate_images hard_max_characters ignore_dotted_messages include_images include_reply_tags include_text_attachments
llm_retries max_bot_reply_chain_depth max_images max_mcp_images max_queued_replies max_text_attachment_kb max_tokens
max_tool_depth may_speak mcp_servers mention_format message_delimiter mode name participant_stop_sequences
plugin_config prefill_thinking prefill_user_message prefill_user_message_file presence_penalty
preserve_thinking_blocks preserve_thinking_context prompt_caching provider_params recency_window_characters
recency_window_messages recent_participant_count repetition_penalty reply_on_name reply_on_random rolling_threshold
soma steer_readout steer_roles steer_visible stop_sequences streaming supports_continuation system_prompt
system_prompt_file temperature thinking_budget thinking_type tool_output_visible tool_plugins tools_enabled top_p
tts_relay turn_end_token use_display_names use_display_names_bots use_display_names_humans""".split())


def test_schema_covers_upstream_whitelist() -> None:
    # chapterx extensions (marked x-extension) survive resolution on top of upstream's whitelist.
    extensions = {k for k, spec in sch.bot_properties().items() if spec.get("x-extension")}
    assert extensions == {"chapter2_prompt", "error_reaction", "allow_dms", "activation_rules", "chapter2_em"}
    assert set(sch.whitelist()) - extensions == UPSTREAM_WHITELIST
    for key, spec in sch.bot_properties().items():
        assert spec.get("description"), key
        assert "type" in spec, key


def test_schema_command_prints_json() -> None:
    res = run_cli("schema", "chapterx-bot")
    assert res.code == 0
    data = json.loads(res.out)
    assert data["$schema"].endswith("2020-12/schema") and "temperature" in data["properties"]
    bad = run_cli("schema", "no-such-schema")
    assert bad.code == 2 and "chapterx-shared" in bad.err


def test_default_layout_from_env(tmp_path: Path) -> None:
    write_tree(tmp_path, {"cfg/shared.yaml": "temperature: 0.4\n", "cfg/bots/aria.yaml": GOOD,
                          "cfg/guilds/42.yaml": "max_tokens: 42\n", "cfg/bots/aria-42.yaml": "top_p: 0.5\n"})
    r = resolve_bot_config(guild_id="42", env={"BOT_NAME": "aria", "CONFIG_PATH": str(tmp_path / "cfg")})
    assert (r.layout, r.bot_id) == ("default", "aria")
    assert (r.config["temperature"], r.config["max_tokens"], r.config["top_p"]) == (0.4, 42, 0.5)
    assert r.sources["max_tokens"].endswith("guilds/42.yaml:1")


def test_bot_config_env_and_config_path_override(tmp_path: Path) -> None:
    write_tree(tmp_path, {"a/bots/MyBot.yaml": GOOD, "a/shared.yaml": "temperature: 0.1\n",
                          "b/shared.yaml": "temperature: 0.2\n"})
    r = resolve_bot_config(env={"BOT_CONFIG": str(tmp_path / "a/bots/MyBot.yaml")})
    assert (r.layout, r.bot_id, r.config["temperature"]) == ("file", "MyBot", 0.1)
    r = resolve_bot_config(env={"BOT_CONFIG": str(tmp_path / "a/bots/MyBot.yaml"), "CONFIG_PATH": str(tmp_path / "b")})
    assert r.config["temperature"] == 0.2


def test_ems_layout_from_env(tmp_path: Path) -> None:
    write_tree(tmp_path, {"ems/config.yaml": "temperature: 0.3\n", "ems/aria/config.yaml": GOOD,
                          "ems/aria/guilds/7.yaml": "max_tokens: 7\n", "ems/aria/prompt.txt": "Be Aria."})
    (tmp_path / "ems/aria/config.yaml").write_text(GOOD + "system_prompt_file: prompt.txt\n")
    r = resolve_bot_config(guild_id="7", env={"EMS_PATH": str(tmp_path / "ems"), "BOT_NAME": "aria"})
    assert r.layout == "ems"
    assert (r.config["temperature"], r.config["max_tokens"], r.config["system_prompt"]) == (0.3, 7, "Be Aria.")


def test_no_bot_selected_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_bot_config(env={"CONFIG_PATH": str(tmp_path)})
    assert info.value.exit_code == 2 and "BOT_NAME" in str(info.value)


def test_providers_config_relative_to_bot_file(tmp_path: Path) -> None:
    write_tree(tmp_path, {
        "deploy/common/providers.yaml": "providers:\n  anthropic: {api_key: sk-ant-x}\n  openrouter: {api_key: sk-or-y, api_base: https://openrouter.ai/api/v1}\n",
        "deploy/config/bots/bot.yaml": GOOD + "providers_config: ../../common/providers.yaml\n",
        "deploy/config/shared.yaml": "vendors: {openai: {config: {openai_api_key: never-read}}}\n",
    })
    r = resolve_bot_config(bot_file=tmp_path / "deploy/config/bots/bot.yaml", env={})
    assert [(v.name, v.kind) for v in r.vendors] == [("anthropic", "anthropic"), ("openrouter", "openrouter")]
    assert "providers_config" not in r.config


def test_vendor_env_references(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/shared.yaml": "vendors:\n  anthropic:\n    config: {anthropic_api_key: '${MY_KEY}'}\n",
                          "c/bots/aria.yaml": GOOD})
    r = resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", env={"MY_KEY": "sk-from-env"})
    assert r.vendors[0].config["anthropic_api_key"] == "sk-from-env"
    r = resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", env={})
    assert "anthropic_api_key" not in r.vendors[0].config  # unset variable = no key (env fallback applies)


def test_settings_defaults_and_overrides() -> None:
    s = Settings.from_env({})
    assert (s.config_path, s.cache_path, s.tools_path, s.logs_dir, s.trace_dir) == (
        Path("config"), Path("cache"), Path("tools"), Path("logs"), Path("logs/traces"))
    assert s.bot_config is None and s.ems_path is None and s.layout == "default" and s.log_level == "info"
    s = Settings.from_env({"LOGS_DIR": "/var/x", "LOG_LEVEL": "DEBUG", "BOT_NAME": "b"})
    assert s.trace_dir == Path("/var/x/traces") and s.log_level == "debug" and s.layout == "bot_name"
    assert Settings.from_env({"TRACE_DIR": "/t"}).trace_dir == Path("/t")


def test_token_file_paths(tmp_path: Path) -> None:
    assert Settings.from_env({"DISCORD_TOKEN_FILE": "/opt/tok"}).token_file(cwd=tmp_path) == Path("/opt/tok")
    assert Settings.from_env({"DISCORD_TOKEN_FILE": "t/tok"}).token_file(cwd=tmp_path) == tmp_path / "t/tok"
    assert Settings.from_env({}).token_file(cwd=tmp_path) == tmp_path / "discord_token"
    assert Settings.from_env({"BOT_NAME": "b"}).token_file(cwd=tmp_path) == Path("config/bots/b_discord_token")
    assert Settings.from_env({"BOT_NAME": "b", "EMS_PATH": "/e"}).token_file() == Path("/e/b/discord_token")


def test_bad_pin_is_skipped_not_fatal(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/bots/aria.yaml": GOOD, "c/shared.yaml": "x: 1\n"})
    pins = extract_config_pins([".config\n---\ntemperature: 5", ".config\n---\ninclude_images: no",
                                ".config\n---\nmax_tokens: 77"])
    r = resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", channel_configs=pins, env={})
    assert r.config["temperature"] == 1 and r.config["include_images"] is True and r.config["max_tokens"] == 77
    skipped = [w.message for w in r.warnings if "pinned .config skipped" in w.message]
    assert len(skipped) == 2 and "write false" in skipped[1]


def test_pin_cannot_escape_prompt_folder(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/bots/aria.yaml": GOOD, "c/shared.yaml": "vendors: {anthropic: {config: {anthropic_api_key: sk-secret}}}\n",
                          "c/bots/ok.txt": "fine"})
    for bad in ("../shared.yaml", "/etc/passwd"):
        r = resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", env={},
                               channel_configs=[f"system_prompt_file: {bad}"])
        assert "system_prompt" not in r.config
    r = resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", env={}, channel_configs=["system_prompt_file: ok.txt"])
    assert r.config["system_prompt"] == "fine"


def test_camel_case_and_inner_name(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/bots/aria.yaml": "innerName: Aria\ncontinuationModel: m\nmaxTokens: 12\n"})
    r = resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", env={})
    assert (r.config["name"], r.config["continuation_model"], r.config["max_tokens"]) == ("Aria", "m", 12)
    assert sum("camelCase" in w.message for w in r.warnings) == 2
    assert any("innerName is deprecated" in w.message for w in r.warnings)
    with pytest.raises(ConfigError):
        resolve_bot_config(config_root=tmp_path / "c", bot_name="aria", env={}, strict=False,
                           channel_configs=[], guild_id=None, bot_file=tmp_path / "c/bots/missing.yaml")


def test_mask_secrets() -> None:
    masked = mask_secrets({"anthropic_api_key": "sk", "aws_secret_access_key": "s", "token": "t", "max_tokens": 5,
                           "turn_end_token": "<eot>", "tts_relay": {"token": "x", "url": "ws://h"},
                           "mcp_servers": [{"name": "gh", "env": {"GITHUB": "ghp"}}], "soma": {"token": ""}})
    assert masked["anthropic_api_key"] == masked["aws_secret_access_key"] == masked["token"] == "***"
    assert masked["max_tokens"] == 5 and masked["turn_end_token"] == "<eot>"
    assert masked["tts_relay"] == {"token": "***", "url": "ws://h"}
    assert masked["mcp_servers"][0]["env"]["GITHUB"] == "***"


def test_config_show_guild_and_pins(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/bots/aria.yaml": GOOD, "c/guilds/9.yaml": "temperature: 0.9\n"})
    res = run_cli("config", "show", "--json", "--config", str(tmp_path / "c/bots/aria.yaml"), "--guild", "9",
                  "--pin", ".config aria\n---\nmax_tokens: 9", "--pin", ".config other\n---\nmax_tokens: 1")
    assert res.code == 0, res.err
    cfg = json.loads(res.out)["config"]
    assert (cfg["temperature"], cfg["max_tokens"]) == (0.9, 9)


def test_validate_config_root_roles(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/shared.yaml": "vendors: {weird: {config: {}}}\n", "c/bots/aria.yaml": GOOD,
                          "c/bots/aria-5.yaml": "temperature: 0.5\n", "c/guilds/5.yaml": "vendors: {}\n",
                          "c/bots/prompt.md": "text"})
    reports = validate_paths([tmp_path / "c"])
    names = [Path(r.path).name for r in reports]
    assert names == ["shared.yaml", "5.yaml", "aria-5.yaml", "aria.yaml"]
    assert any("unknown vendor name prefix" in w.message and w.line == 1 for w in reports[0].warnings)
    assert any("vendors belong in the shared file" in w.message for w in reports[1].warnings)
    assert all(r.ok for r in reports)


def test_validate_json_shape(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/bots/aria.yaml": GOOD + "temperature: 7\n"})
    res = run_cli("validate", "--json", str(tmp_path / "c/bots/aria.yaml"))
    assert res.code == 1
    data = json.loads(res.out)
    assert data["ok"] is False
    [f] = data["files"]
    assert f["dialect"] == "chapterx" and f["warnings"] == []
    assert f["errors"] == [{"message": "temperature must be between 0 and 2 (got 7)", "key": "temperature", "line": 3}]


def test_chapterx_ems_layout_validates(tmp_path: Path) -> None:
    write_tree(tmp_path, {"ems/config.yaml": "temperature: 0.3\n", "ems/aria/config.yaml": GOOD,
                          "ems/bob/config.yaml": "name: Bob\n"})
    res = run_cli("validate", "--dialect", "chapterx", str(tmp_path / "ems"))
    assert res.code == 1
    assert "bob/config.yaml" in res.out and "continuation_model" in res.out and "aria" not in res.out


def test_chapter2_dispatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chapter2 ems folder goes to the chapter2 API, and its answers reach the output (secrets masked)."""
    from chapterx.config.report import FileReport, Problem
    from chapterx_compat.chapter2 import api

    seen: list[tuple[Path, bool, bool]] = []

    def validate(path: Path, *, strict: bool = False, home: bool = False) -> list[FileReport]:
        seen.append((path, strict, home))
        return [FileReport(str(path / "em1"), "chapter2", errors=[Problem("em1 is broken", "em.temperature", 3)])]

    monkeypatch.setattr(api, "looks_like_chapter2", lambda p: True)
    monkeypatch.setattr(api, "validate_deployment", validate)
    (tmp_path / "ems").mkdir()
    res = run_cli("validate", "--strict", str(tmp_path / "ems"))
    assert seen == [(tmp_path / "ems", True, False)]
    assert res.code == 1 and res.out.count("error:") == 1 and f"{tmp_path / 'ems' / 'em1'}:3: error: em1 is broken" in res.out
    monkeypatch.setattr(api, "translate_em", lambda ems, name, home=False: {"name": name, "api_key": "k"})
    res = run_cli("config", "show", "--json", "--ems", str(tmp_path / "ems"), "--bot", "em1")
    assert res.code == 0
    assert json.loads(res.out)["config"] == {"name": "em1", "api_key": "***"}


def test_config_show_chapterx_ems_layout(tmp_path: Path) -> None:
    write_tree(tmp_path, {"ems/config.yaml": "max_tokens: 321\n", "ems/aria/config.yaml": GOOD + "mode: chat\n"})
    res = run_cli("config", "show", "--json", "--ems", str(tmp_path / "ems"), "--bot", "aria")
    assert res.code == 0, res.err
    data = json.loads(res.out)
    assert data["layout"] == "ems" and data["config"]["max_tokens"] == 321 and data["config"]["mode"] == "chat"
