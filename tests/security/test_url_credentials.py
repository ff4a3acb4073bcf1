"""Issue 9 item 13: credentials inside URLs are masked by `config show`."""

from __future__ import annotations

from pathlib import Path

from chapterx.config.secrets import mask_secrets, mask_url_credentials
from tests.config.conftest import run_cli, write_tree


def test_url_credentials_are_masked() -> None:
    assert mask_url_credentials("https://user:pw@host/x") == "https://***@host/x"
    assert mask_url_credentials("wss://tok@relay.example") == "wss://***@relay.example"
    assert mask_url_credentials("mail me at a@b.c") == "mail me at a@b.c"
    assert mask_secrets({"tts_relay": {"url": "ws://u:SeCrEt99@h:1"}}) == {"tts_relay": {"url": "ws://***@h:1"}}


def test_config_show_masks_url_credentials(tmp_path: Path) -> None:
    write_tree(tmp_path, {"c/bots/aria.yaml": "name: Aria\ncontinuation_model: m\n"
                          "tts_relay:\n  enabled: false\n  url: wss://bob:hunter2-PASSWORD@relay.example/ws\n"})
    res = run_cli("config", "show", "--config", str(tmp_path / "c/bots/aria.yaml"))
    assert res.code == 0, res.err
    assert "hunter2-PASSWORD" not in res.out and "relay.example" in res.out
