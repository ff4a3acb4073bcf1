"""Issue 9 item 1: a `*_file` key (in a file or a pin) reads prompt text only.

Never the Discord token, the shared file, a file named like a secret, a file holding a known
secret, or anything outside the allowed prompt folders (symlinks resolved first).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chapterx.config.load import resolve_bot_config
from chapterx.config.pins import extract_config_pins
from tests.config.conftest import run_cli, write_tree

TOKEN = "MTIzNDU2Nzg5.pin-leak-TOKEN.secret-value-0001"
KEY = "sk-ant-prompt-file-SECRET-0002"
GOOD = "name: Aria\ncontinuation_model: claude-3-opus-20240229\n"
SHARED = f"vendors:\n  anthropic:\n    config:\n      anthropic_api_key: {KEY}\n"


def _tree(tmp_path: Path) -> Path:
    write_tree(tmp_path, {
        "c/shared.yaml": SHARED, "c/bots/aria.yaml": GOOD, "c/bots/aria_discord_token": TOKEN + "\n",
        "c/bots/prompts/aria.md": "You are Aria.", "c/bots/ok.txt": "fine",
        "c/prompts/common.md": "Shared prompt.", "outside/p.md": "outside",
    })
    return tmp_path / "c"


def _pin(text: str) -> list[str]:
    return extract_config_pins([f".config\n---\nsystem_prompt: ''\n{text}"])


def _resolve(root: Path, pins: list[str] | None = None, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return resolve_bot_config(config_root=root, bot_name="aria", env=env or {}, channel_configs=pins or [])


def _leaked(r: object) -> bool:
    text = repr(r.config)
    return TOKEN in text or KEY in text


@pytest.mark.parametrize("name", ["aria_discord_token", "./aria_discord_token", "prompts/../aria_discord_token"])
def test_pin_cannot_read_the_token_beside_the_bot_file(tmp_path: Path, name: str) -> None:
    r = _resolve(_tree(tmp_path), _pin(f"system_prompt_file: {name}"))
    assert not _leaked(r) and not r.config.get("system_prompt")
    assert any("system_prompt_file" in w.message and "refused" in w.message for w in r.warnings)


def test_ems_layout_token_is_refused(tmp_path: Path) -> None:
    write_tree(tmp_path, {"ems/aria/config.yaml": GOOD, "ems/aria/discord_token": TOKEN, "ems/aria/p.md": "hi"})
    r = resolve_bot_config(ems_path=tmp_path / "ems", bot_name="aria", env={},
                           channel_configs=_pin("system_prompt_file: discord_token"))
    assert not _leaked(r) and not r.config.get("system_prompt")
    r = resolve_bot_config(ems_path=tmp_path / "ems", bot_name="aria", env={},
                           channel_configs=_pin("system_prompt_file: config.yaml"))
    assert not r.config.get("system_prompt")  # a config file is not a prompt
    r = resolve_bot_config(ems_path=tmp_path / "ems", bot_name="aria", env={},
                           channel_configs=_pin("system_prompt_file: p.md"))
    assert r.config["system_prompt"] == "hi"


def test_bot_file_keys_are_confined_too(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for bad in ("../shared.yaml", "aria_discord_token", str(tmp_path / "outside/p.md"), "/etc/passwd"):
        (root / "bots/aria.yaml").write_text(GOOD + f"system_prompt_file: {bad}\n")
        r = _resolve(root)
        assert not r.config.get("system_prompt"), bad
        assert not _leaked(r)
        assert any("refused" in w.message for w in r.warnings), bad


def test_prompt_folders_that_stay_allowed(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    for name, text in (("prompts/aria.md", "You are Aria."), ("ok.txt", "fine"), ("../prompts/common.md", "Shared prompt."),
                       (str(root / "bots/ok.txt"), "fine")):
        (root / "bots/aria.yaml").write_text(GOOD + f"system_prompt_file: {name}\n")
        assert _resolve(root).config["system_prompt"] == text, name
    # an operator can allow another folder explicitly
    (root / "bots/aria.yaml").write_text(GOOD + f"system_prompt_file: {tmp_path / 'outside/p.md'}\n")
    r = _resolve(root, env={"CHAPTERX_PROMPT_DIRS": str(tmp_path / "outside")})
    assert r.config["system_prompt"] == "outside"


def test_symlinked_prompt_to_token_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    os.symlink(root / "bots/aria_discord_token", root / "bots/prompts/innocent.md")
    os.symlink(tmp_path / "outside/p.md", root / "bots/prompts/away.md")
    for name in ("prompts/innocent.md", "prompts/away.md"):
        r = _resolve(root, _pin(f"system_prompt_file: {name}"))
        assert not r.config.get("system_prompt") and not _leaked(r), name


@pytest.mark.parametrize("name", ["api_key.txt", "secrets/p.md", "id_rsa", "server.pem", ".env", "passwords.md",
                                  "creds.json", "other.yaml"])
def test_secret_like_names_are_refused(tmp_path: Path, name: str) -> None:
    root = _tree(tmp_path)
    write_tree(root / "bots", {name: "harmless text"})
    r = _resolve(root, _pin(f"system_prompt_file: {name}"))
    assert not r.config.get("system_prompt")


def test_a_file_holding_a_known_secret_is_refused(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    write_tree(root / "bots", {"notes.md": f"remember {KEY} and more"})
    r = _resolve(root, _pin("system_prompt_file: notes.md"))
    assert not r.config.get("system_prompt") and not _leaked(r)
    assert any("secret" in w.message for w in r.warnings)


def test_config_show_pin_does_not_print_the_token(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    res = run_cli("config", "show", "--config", str(root / "bots/aria.yaml"),
                  "--pin", ".config\n---\nsystem_prompt: ''\nsystem_prompt_file: aria_discord_token")
    assert TOKEN not in res.out + res.err
    assert "refused" in res.out + res.err
    assert "Traceback" not in res.err
