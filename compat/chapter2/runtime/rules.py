"""The `activation_rules` bot key: which runtime a migrated chapter2 em runs with.

`chapterx migrate` writes `activation_rules: chapter2` plus `chapter2_em` (the em's chapter2 config:
merged layers and key-files, secrets removed) so the migrated bot keeps chapter2's behaviour;
`activation_rules: chapterx` opts into ChapterX's rules. `config_from_bot` rebuilds the chapter2 config
from those keys at run time (vendors come from the ChapterX tree).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chapterx_compat.chapter2 import models as m

RULES = ("chapter2", "chapterx")
_SECRETS = frozenset({"vendors", "exa_search_api_key", "novelai_api_key", "discord_token", "discord_proxy_url",
                      "end_to_end_test_discord_token", "api_token"})
_FORCED = frozenset({"folder", "sysname"})


def _drop_secrets(value: Any) -> Any:
    from chapterx.config.secrets import is_secret_key

    if isinstance(value, dict):
        return {k: _drop_secrets(v) for k, v in value.items()
                if k not in _SECRETS and not (isinstance(k, str) and is_secret_key(k))}
    if isinstance(value, list):
        return [_drop_secrets(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def bot_keys(kv: dict[str, Any], rules: str) -> dict[str, Any]:
    """The keys migrate adds to a bot file for the chosen rule set."""
    if rules not in RULES:
        raise ValueError(f"activation rules must be one of {', '.join(RULES)}")
    if rules == "chapterx":
        return {"activation_rules": "chapterx"}
    # only keys chapter2 reads (it ignores the rest, e.g. vendor names written at the top of vendors.yaml)
    known = {k: v for k, v in kv.items() if k in m.VALID_FILE_KEYS and k not in _FORCED}
    em = _drop_secrets(known)
    return {"activation_rules": "chapter2", "chapter2_em": em}


def describe(rules: str) -> str:
    """One line for the migration report."""
    if rules == "chapter2":
        return ("chapter2 (`activation_rules: chapter2`): the bot answers as the em did in chapter2 (name, random, "
                "sim and regex triggers, per-author queues, `m mu`, topic and pinned `.config`, one message per line)")
    return ("chapterx (`activation_rules: chapterx`): ChapterX's activation rules; chapter2-only triggers such as "
            "reply_on_name and reply_on_random no longer fire")


def config_from_bot(bot: dict[str, Any], bot_file: Path, sysname: str) -> m.Config:
    """The chapter2 config of a migrated bot (`chapter2_em`), validated as chapter2 loads it."""
    from chapterx_compat.chapter2.load import validate_kv

    kv = dict(bot.get("chapter2_em") or {})
    kv.setdefault("name", sysname)
    kv["sysname"] = sysname
    kv["folder"] = Path(bot_file).parent / sysname  # migrate copies the .chr folders there
    config, _warnings, _renamed, _configured = validate_kv(sysname, kv, {})
    return config
