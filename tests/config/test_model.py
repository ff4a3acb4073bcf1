"""The typed config (`chapterx.config.model.BotConfig`) is the schema's, and the loader's, not a third copy."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

from chapterx.config import schema as sch
from chapterx.config.load import resolve_bot_config
from chapterx.config.model import KEYS, BotConfig

REPO = Path(__file__).resolve().parents[2]


def test_generated_model_is_current() -> None:
    """A key added to the schema without regenerating the model fails here, naming the command."""
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "gen_config_model.py"), "--check"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_keys_are_the_resolved_whitelist() -> None:
    assert list(KEYS) == sch.whitelist()


def _minimal(tmp_path: Path) -> Path:
    bots = tmp_path / "config" / "bots"
    bots.mkdir(parents=True)
    (tmp_path / "config" / "shared.yaml").write_text(
        "vendors:\n  anthropic:\n    config:\n      anthropic_api_key: k\n    provides: ['claude-*']\n", encoding="utf-8")
    (bots / "aria.yaml").write_text("name: Aria\ncontinuation_model: claude-sonnet-4-5\n", encoding="utf-8")
    return tmp_path / "config"


def test_field_defaults_equal_the_loaders_defaults(tmp_path: Path) -> None:
    """Every default the dataclass carries is the one the loader applies (so no default lives twice)."""
    resolved = resolve_bot_config(config_root=_minimal(tmp_path), bot_name="aria", env={})
    typed = resolved.typed
    expected = BotConfig(name="Aria", continuation_model="claude-sonnet-4-5")
    differing = [f.name for f in fields(BotConfig) if f.name != "raw"
                 and getattr(typed, f.name) != getattr(expected, f.name)]
    assert differing == []
    assert typed.reply_on_random == 500 and typed.stop_sequences == () and typed.prompt_caching is True


def test_typed_view_carries_every_resolved_value(tmp_path: Path) -> None:
    root = _minimal(tmp_path)
    (root / "bots" / "aria.yaml").write_text(
        "name: Aria\ncontinuation_model: claude-sonnet-4-5\nreply_on_random: 0\nstop_sequences: [\"\\n\\n\"]\n"
        "temperature: 0.4\ntool_plugins: [notes]\n", encoding="utf-8")
    resolved = resolve_bot_config(config_root=root, bot_name="aria", env={})
    typed = resolved.typed
    assert typed is resolved.typed  # built once
    assert (typed.reply_on_random, typed.stop_sequences, typed.temperature, typed.tool_plugins) == \
        (0, ("\n\n",), 0.4, ("notes",))
    for key, value in resolved.config.items():
        if key in KEYS:
            assert getattr(typed, key) == (tuple(value) if isinstance(value, list) else value), key
    assert typed.raw is resolved.config


def test_hand_written_mapping_converts_like_the_resolver() -> None:
    """Pure stages accept a hand-written mapping (tests, replays): null is unset, and `use_display_names`
    is the default of the per-class keys, as the resolver does; a typed value passes through untouched."""
    from chapterx.config.typed import as_bot_config

    raw = {"name": "Aria", "max_images": None, "use_display_names": True, "use_display_names_humans": False}
    cfg = as_bot_config(raw)
    assert (cfg.max_images, cfg.use_display_names_bots, cfg.use_display_names_humans) == (5, True, False)
    assert cfg.raw is raw and as_bot_config(cfg) is cfg
    assert as_bot_config({}).reply_on_random == BotConfig().reply_on_random == 500

