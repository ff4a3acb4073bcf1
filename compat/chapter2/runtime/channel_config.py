"""Per-channel config from the topic and pinned `.config` messages (chapter2.md §5.6.6).

`topic_kv` and `pin_kv` read the YAML the way chapter2 does (the text between the first and second
`---`, ```yaml fences removed, bad YAML is `{}`); `effective_config` applies a channel kv to the loaded
em: em keys through chapter2's overlay (lists append, dicts merge), interface keys by plain replacement.
A value that fails validation raises pydantic's `ValidationError` (the caller reacts ⚙️).
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chapterx_compat.chapter2 import models as m
from chapterx_compat.chapter2.load import Chapter2Error, overlay, rename_keys
from chapterx_compat.chapter2.runtime.convert import mentioned_in, parse_command
from chapterx_compat.chapter2.runtime.port import MAX_ATTACHMENT_BYTES, C2Message
from chapterx_compat.chapter2.yaml11 import YAML11Error, load_yaml11

_CONFIG_FILE_RE = re.compile(r"^\.?config(?:[-\s|.]+(.*?))?\.ya?ml$")
_KEY_FILE_RE = re.compile(r"^(\w+)\.\w+$")


def parse_yaml(text: str) -> dict[str, Any]:
    """YAML 1.1 mapping, or `{}` for anything unparsable or not a mapping (chapter2 prints and ignores)."""
    try:
        data, _dups = load_yaml11(text)
    except (YAML11Error, ValueError, Exception):  # noqa: BLE001 - any parser failure is "no config"
        return {}
    return dict(data) if isinstance(data, dict) else {}


def yaml_window(text: str) -> dict[str, Any]:
    """The YAML between the first and the second `---` (so a `---` inside a value cuts it: a quirk)."""
    if "---" not in text:
        return {}
    part = text.split("---")[1].replace("```yaml", "").replace("```", "")
    return parse_yaml(part)


def topic_kv(topic: str | None) -> dict[str, Any]:
    return yaml_window(topic or "")


def _targets_me(targets: list[str], names: tuple[str, str], mentioned: bool) -> bool:
    return not targets or any(t in names for t in targets) or mentioned


async def pin_kv(
    pins: list[C2Message],
    *,
    bot_id: int,
    names: tuple[str, str],
    download: Callable[[str], Awaitable[bytes]],
) -> dict[str, Any]:
    """The pinned config (oldest pin first, newer pins win key by key). `names` = (bot username, sysname)."""
    kv: dict[str, Any] = {}
    for pin in pins:
        mentioned = mentioned_in(pin, bot_id)
        counts = False
        cmd = parse_command(pin.content)
        if cmd is not None and cmd[0] == "config" and _targets_me(cmd[1], names, mentioned):
            counts = True
            kv.update(yaml_window(pin.content))
        texts = [a for a in pin.attachments if not a.is_image and a.size <= MAX_ATTACHMENT_BYTES]
        for att in texts:
            fm = _CONFIG_FILE_RE.match(att.filename)
            if fm is None:
                continue
            targets = [t for t in re.split(r"[-\s|.]+", fm.group(1) or "") if t]
            if _targets_me(targets, names, mentioned):
                counts = True
                kv.update(parse_yaml((await download(att.url)).decode("utf-8", errors="replace")))
        if not counts:
            continue
        for att in texts:
            if _CONFIG_FILE_RE.match(att.filename):
                continue
            km = _KEY_FILE_RE.match(att.filename)
            if km is None:
                continue
            try:
                value, _ = load_yaml11((await download(att.url)).decode("utf-8", errors="replace"))
            except Exception:  # noqa: BLE001 - an unreadable key file is skipped like bad YAML
                continue
            kv[km.group(1)] = value
    return kv


# Keys a topic or pin may not set: secrets (an API key or token has no business in a channel, and a
# vendor entry would point the em's requests elsewhere) and the loader-forced em folder.
CHANNEL_BLOCKED_KEYS = frozenset({"vendors", "exa_search_api_key", "metaphor_search_api_key", "novelai_api_key",
                                  "discord_token", "discord_proxy_url", "end_to_end_test_discord_token",
                                  "folder", "sysname"})
_PLAIN_NAME = re.compile(r"^[^/\\\x00]+$")


class ChannelConfigError(ValueError):
    """A channel config value chapterx refuses (reacted to with ⚙️, like a validation error)."""


@dataclass(frozen=True)
class Effective:
    em: m.EmConfig
    iface: m.DiscordInterfaceConfig
    changes: dict[str, dict[str, Any]]  # {"em": {...}, "interface": {...}}: fields differing from the base


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_jsonable(x) for x in v]
    return v


def _diff(base: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    return {k: _jsonable(new[k]) for k in sorted(new) if base.get(k) != new[k]}


def effective_config(base: m.Config, kv: dict[str, Any], iface_index: int = 0) -> Effective:
    """The em and Discord interface config for one channel (rebuilt per message, as chapter2 does)."""
    kv = {k: v for k, v in kv.items() if k not in CHANNEL_BLOCKED_KEYS}
    if isinstance(kv.get("em"), dict):
        kv["em"] = {k: v for k, v in kv["em"].items() if k not in CHANNEL_BLOCKED_KEYS}
    try:
        renamed, _ = rename_keys(base.em.sysname, dict(kv), {})
    except Chapter2Error:
        renamed = dict(kv)
    em_updates: dict[str, Any] = {}
    if isinstance(renamed.get("em"), dict):
        em_updates.update(renamed["em"])
    iface_cls = type(base.interfaces[iface_index])
    iface_updates: dict[str, Any] = {}
    for key, value in renamed.items():
        if key in m.EM_KEYS:
            em_updates[key] = value
        elif key in iface_cls.model_fields and key != "name":
            iface_updates[key] = value
    base_em = base.em.model_dump(mode="python")
    base_iface = base.interfaces[iface_index].model_dump(mode="python")
    em_data = overlay(base_em, em_updates) if em_updates else base_em
    em_data["sysname"] = base.em.sysname
    em_data["folder"] = base.em.folder
    iface_data = {**base_iface, **iface_updates}
    cfg = m.Config.model_validate({"em": em_data, "interfaces": [iface_data]})
    iface = cfg.interfaces[0]
    assert isinstance(iface, m.DiscordInterfaceConfig)
    for faculty in cfg.em.ensembles:
        if not isinstance(faculty, m.CharacterFacultyConfig):
            continue
        name = faculty.name or cfg.em.name  # the corpus folder is `<name>.chr` inside the em folder
        if not _PLAIN_NAME.match(name) or name in (".", ".."):
            raise ChannelConfigError(f"character corpus name {name[:40]!r} is not a plain folder name")
    changes = {
        "em": _diff(base.em.model_dump(mode="json"), cfg.em.model_dump(mode="json")),
        "interface": _diff(base.interfaces[iface_index].model_dump(mode="json"), iface.model_dump(mode="json")),
    }
    return Effective(cfg.em, iface, changes)
