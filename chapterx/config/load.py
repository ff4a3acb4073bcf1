"""Resolving one bot's config: find the layer files, check each, merge, apply defaults.

Layers (reference section 2.1): shared -> guild -> bot -> bot x guild -> pinned `.config` texts.
A broken *file* is a ConfigError naming file, line and key (an operator must fix it); a broken *pin*
is skipped with a warning (anyone can pin, and one bad pin must not silence the bot).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from chapterx.config import schema as sch
from chapterx.config.check import Checked, check_document
from chapterx.config.env import Settings
from chapterx.config.errors import ConfigError
from chapterx.config.merge import apply_defaults, merge_layers
from chapterx.config.model import BotConfig
from chapterx.config.pins import target_matches
from chapterx.config.prompt_files import PromptFileRefused, check_prompt_path, prompt_roots
from chapterx.config.report import Problem
from chapterx.config.secrets import KNOWN, KnownSecrets, env_secret_values, register_secrets, secret_values
from chapterx.config.vendors import VendorConfig, normalise_vendors
from chapterx.config.yamlio import Document, load_file, parse_yaml, read_text

REQUIRED = ("name", "continuation_model")
PROMPT_FILE_LIMIT = 8 * 1024 * 1024  # prompt texts can be long; they are not parsed


@dataclass
class LayerPaths:
    """Where each layer lives for one bot (any of them may be missing on disk)."""

    layout: str  # "default" | "ems" | "file"
    bot_id: str
    config_root: Path
    shared: Path | None
    bot: Path
    prompt_dir: Path
    guilds_dir: Path
    bot_guild_dir: Path
    bot_guild_prefix: str
    explicit_bot: bool = False

    def guild(self, guild_id: str) -> Path:
        return self.guilds_dir / f"{guild_id}.yaml"

    def bot_guild(self, guild_id: str) -> Path:
        return self.bot_guild_dir / f"{self.bot_guild_prefix}{guild_id}.yaml"


@dataclass
class Layer:
    role: str  # "shared" | "guild" | "bot" | "bot-guild" | "pin"
    source: str
    data: dict[str, Any]
    lines: dict[str, int] = field(default_factory=dict)


@dataclass
class Finding:
    """A problem found while resolving, with the file (or pin) it belongs to."""

    source: str
    severity: str  # "error" | "warning"
    problem: Problem


@dataclass
class ResolvedConfig:
    """The resolved bot config (snake_case, defaults applied) and how it was obtained."""

    config: dict[str, Any]
    vendors: list[VendorConfig]
    warnings: list[Problem]
    paths: list[Path]  # files that were read, in layer order
    bot_id: str
    layout: str
    config_root: Path
    raw: dict[str, Any] = field(default_factory=dict)  # merged layers before defaults
    sources: dict[str, str] = field(default_factory=dict)  # top-level key -> "file:line" that set it
    startup: dict[str, Any] = field(default_factory=dict)  # shared + bot file only (startup-only keys)
    settings: Settings = field(default_factory=Settings)
    findings: list[Finding] = field(default_factory=list)

    @cached_property
    def typed(self) -> BotConfig:
        """The resolved config as a typed value, built once."""
        return BotConfig.from_resolved(self.config)


def locate(*, config_root: Path | None = None, bot_file: Path | None = None, ems_path: Path | None = None,
           bot_name: str | None = None, settings: Settings | None = None) -> LayerPaths:
    """Pick the layout and the layer file paths (explicit arguments beat environment variables)."""
    s = settings or Settings()
    if bot_file is None and ems_path is None and config_root is None:
        bot_file = s.bot_config
        if bot_file is None and s.ems_path is not None and (bot_name or s.bot_name):
            ems_path = s.ems_path
    if bot_file is not None:
        bot_file = Path(bot_file)
        if not bot_file.exists():
            raise ConfigError("bot config file not found", path=str(bot_file), exit_code=2)
        if bot_file.is_dir():
            raise ConfigError("is a directory; --config expects a bot YAML file", path=str(bot_file), exit_code=2)
        root = Path(config_root) if config_root else (s.config_path if s.config_path_set else bot_file.parent.parent)
        stem = bot_file.name
        for suffix in (".yaml", ".yml"):
            stem = stem.removesuffix(suffix)
        file_bot_id: str = bot_name or s.bot_name or stem
        return LayerPaths("file", file_bot_id, root, root / "shared.yaml", bot_file, bot_file.parent,
                          root / "guilds", bot_file.parent, f"{stem}-", explicit_bot=True)
    bot_id = bot_name or s.bot_name
    # Here the name becomes a path part (<ems>/<bot>/, bots/<bot>.yaml): keep it inside the folder.
    if bot_id and (bot_id in (".", "..") or any(ch in bot_id for ch in "/\\\0")):
        raise ConfigError(f"bot name {bot_id!r} must be a plain name (no path separators; --bot or BOT_NAME)",
                          path=str(ems_path if ems_path is not None else (config_root or s.config_path)),
                          exit_code=2)
    if ems_path is not None:
        ems = Path(ems_path)
        if not bot_id:
            raise ConfigError("the EMS layout needs a bot name (--bot or BOT_NAME)", path=str(ems), exit_code=2)
        if not ems.is_dir():
            raise ConfigError("EMS folder not found", path=str(ems), exit_code=2)
        return LayerPaths("ems", bot_id, ems, ems / "config.yaml", ems / bot_id / "config.yaml", ems / bot_id,
                          ems / "guilds", ems / bot_id / "guilds", "")
    root = Path(config_root) if config_root else s.config_path
    if not bot_id:
        raise ConfigError("no bot selected: give --config BOT_FILE, or set BOT_NAME (or BOT_CONFIG)",
                          path=str(root), exit_code=2)
    return LayerPaths("default", bot_id, root, root / "shared.yaml", root / "bots" / f"{bot_id}.yaml",
                      root / "bots", root / "guilds", root / "bots", f"{bot_id}-")


def _first_error(checked: Checked, source: str) -> None:
    if checked.errors:
        p = checked.errors[0]
        more = f" (and {len(checked.errors) - 1} more problem(s); run chapterx validate)" if len(checked.errors) > 1 else ""
        raise ConfigError(p.message + more, path=source, key=p.key, line=p.line)


class _Resolver:
    def __init__(self, paths: LayerPaths, env: Mapping[str, str], strict: bool) -> None:
        self.p = paths
        self.env = env
        self.strict = strict
        self.findings: list[Finding] = []
        self.read: list[Path] = []

    def warn(self, source: str, problem: Problem) -> None:
        self.findings.append(Finding(source, "warning", problem))

    def file_layer(self, path: Path | None, role: str, *, required: bool = False) -> Layer | None:
        if path is None:
            return None
        if not path.exists():
            if required:
                raise ConfigError(f"{role} file not found", path=str(path), exit_code=2)
            return None
        doc = load_file(path)
        self.read.append(path)
        schema_name = sch.SHARED_SCHEMA if role == "shared" else sch.BOT_SCHEMA
        checked = check_document(doc, schema_name, strict=self.strict, role="bot" if role == "bot" else role)
        _first_error(checked, str(path))
        for w in checked.warnings:
            self.warn(str(path), w)
        return Layer(role, str(path), checked.data, checked.lines)

    def pin_layer(self, index: int, text: str, file_name: str | None) -> Layer | None:
        source = f"pin {index + 1}"
        try:
            doc = parse_yaml(text, source)
        except ConfigError as exc:
            self.warn(source, Problem(f"pinned .config skipped: {exc.detail}", exc.key, exc.line))
            return None
        data = doc.data
        if data is None:
            return None
        if not isinstance(data, dict):
            self.warn(source, Problem("pinned .config skipped: its YAML is not a mapping of keys"))
            return None
        if "target" in data:
            if not target_matches(data["target"], self.p.bot_id, file_name):
                return None
            data = {k: v for k, v in data.items() if k != "target"}
            doc = Document(source, data, doc.lines)
        checked = check_document(doc, sch.BOT_SCHEMA, strict=False, role="pin")
        if checked.errors:
            e = checked.errors[0]
            self.warn(source, Problem(f"pinned .config skipped: {e.message}", e.key, e.line))
            return None
        for w in checked.warnings:
            self.warn(source, w)
        for fkey in sch.file_keys():
            value = checked.data.get(fkey)
            if isinstance(value, str) and (os.path.isabs(value) or ".." in Path(value).parts):
                self.warn(source, Problem(
                    f"{fkey} in a pin must be a plain path inside the bot's prompt folder; refused", fkey,
                    checked.lines.get(fkey)))
                del checked.data[fkey]
        for key in ("llm_retries", "deferred_retries"):
            if key in checked.data:
                self.warn(source, Problem(f"{key} is read at startup only; setting it in a pin has no effect", key,
                                          checked.lines.get(key)))
        return Layer("pin", source, checked.data, checked.lines)


def _sources(layers: Sequence[Layer]) -> dict[str, str]:
    out: dict[str, str] = {}
    for layer in layers:
        for key, value in layer.data.items():
            if value is None:
                continue
            line = layer.lines.get(key)
            out[key] = f"{layer.source}:{line}" if line else layer.source
    return out


def _read_prompt_files(config: dict[str, Any], r: _Resolver, shared_path: Path | None, secrets: KnownSecrets) -> None:
    """Fill `system_prompt` etc. from their `*_file` keys, through the prompt-folder allow-list."""
    roots = prompt_roots(r.p.prompt_dir, r.p.config_root, r.env)
    refused = [p for p in (shared_path, r.p.shared, r.p.bot) if p is not None]
    for fkey, target in sch.file_keys().items():
        name = config.get(fkey)
        if config.get(target) or not isinstance(name, str) or not name:
            continue
        shown = name if os.path.isabs(name) else str(r.p.prompt_dir / name)
        try:
            path = check_prompt_path(name, roots, refused=refused)
        except PromptFileRefused as exc:
            r.warn(shown, Problem(f"{fkey} {exc}; refused, {target} stays unset", fkey))
            continue
        try:
            text = read_text(path, what=f"{fkey} file", limit=PROMPT_FILE_LIMIT)
        except ConfigError as exc:
            r.warn(shown, Problem(f"{fkey}: {exc.detail}; {target} stays unset", fkey))
            continue
        if secrets.found_in(text):
            r.warn(shown, Problem(f"{fkey} holds a secret (a token or API key); refused, {target} stays unset", fkey))
            continue
        config[target] = text
        r.read.append(path)


def resolve_bot_config(
    *,
    config_root: Path | None = None,
    bot_file: Path | None = None,
    ems_path: Path | None = None,
    bot_name: str | None = None,
    guild_id: str | None = None,
    channel_configs: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    strict: bool = False,
) -> ResolvedConfig:
    """Resolve one bot's config through all layers; raises ConfigError naming file, key and line."""
    environ = os.environ if env is None else env
    settings = Settings.from_env(environ)
    paths = locate(config_root=config_root, bot_file=bot_file, ems_path=ems_path, bot_name=bot_name,
                   settings=settings)
    r = _Resolver(paths, environ, strict)

    bot, shared_path, shared_required = _bot_and_shared_path(r)
    try:
        shared = r.file_layer(shared_path, "shared", required=shared_required)
    except ConfigError as exc:
        if shared_required and exc.exit_code == 2:
            raise ConfigError(f"providers_config names a shared file that does not exist ({shared_path})",
                              path=str(paths.bot), key="providers_config", line=bot.lines.get("providers_config")
                              if bot else None) from None
        raise
    guild = bot_guild = None
    if guild_id is not None:
        guild = r.file_layer(paths.guild(guild_id), "guild")
        bot_guild = r.file_layer(paths.bot_guild(guild_id), "bot-guild")
    file_layers = [x for x in (shared, guild, bot, bot_guild) if x is not None]
    file_name = bot.data.get("name") if bot is not None and isinstance(bot.data.get("name"), str) else None
    pin_layers = [x for i, text in enumerate(channel_configs) if (x := r.pin_layer(i, text, file_name)) is not None]
    layers = file_layers + pin_layers

    raw = merge_layers(layer.data for layer in layers)
    config = apply_defaults(raw)
    vendors, vendor_warnings = normalise_vendors(shared.data if shared else {}, environ,
                                                 str(shared_path) if shared_path else "shared.yaml")
    # Secrets come from the operator's files and environment only: a pin must not censor words.
    register_secrets([*env_secret_values(environ), *secret_values([v.config for v in vendors]),
                      *secret_values([x.data for x in file_layers])])
    _read_prompt_files(config, r, shared_path, KNOWN)
    missing = [k for k in REQUIRED if not config.get(k)]
    if missing:
        where = str(paths.bot) + ("" if paths.bot.exists() else " (not found)")
        err = ConfigError(f"Missing required bot config fields: {', '.join(missing)}", path=where)
        err.key = missing[0]
        raise err
    if config.get("streaming") is False and isinstance(config.get("tts_relay"), dict) and config["tts_relay"].get("enabled"):
        r.warn(str(paths.bot), Problem("streaming: false with tts_relay.enabled: the relay gets whole messages only",
                                       "streaming"))

    for w in vendor_warnings:
        r.warn(str(shared_path), w)
    startup = merge_layers(layer.data for layer in (shared, bot) if layer is not None)
    warnings = [Problem(f"{f.source}{':' + str(f.problem.line) if f.problem.line else ''}: {f.problem.message}",
                        f.problem.key, f.problem.line) for f in r.findings]
    return ResolvedConfig(
        config=config, vendors=vendors, warnings=warnings,
        paths=[Path(x.source) for x in file_layers] + [x for x in r.read if str(x) not in {y.source for y in file_layers}],
        bot_id=paths.bot_id,
        layout=paths.layout, config_root=paths.config_root, raw=raw, sources=_sources(layers),
        startup=startup, settings=settings, findings=r.findings)


def _bot_and_shared_path(r: _Resolver) -> tuple[Layer | None, Path | None, bool]:
    """The bot file's layer, the shared file to use and whether the bot file named it: its
    `providers_config` (relative to the bot file) replaces the shared file found by location."""
    bot = r.file_layer(r.p.bot, "bot", required=r.p.explicit_bot)
    if bot is not None and isinstance(bot.data.get("providers_config"), str):
        return bot, Path(r.p.bot).parent / bot.data["providers_config"], True
    return bot, r.p.shared, False


def _startup_resolver(kwargs: dict[str, Any]) -> tuple[Mapping[str, str], _Resolver]:
    """The environment and a lenient resolver for the startup readers (`env=` plus `locate` keywords)."""
    env = kwargs.pop("env", None)
    environ = os.environ if env is None else env
    paths = locate(settings=Settings.from_env(environ), **kwargs)
    return environ, _Resolver(paths, environ, False)


def load_vendors(**kwargs: Any) -> tuple[list[VendorConfig], list[Problem]]:
    """Vendors from the shared file only (what the runtime reads once at startup)."""
    environ, r = _startup_resolver(kwargs)
    _, shared_path, _ = _bot_and_shared_path(r)
    shared = r.file_layer(shared_path, "shared", required=shared_path != r.p.shared)
    vendors, warnings = normalise_vendors(shared.data if shared else {}, environ)
    return vendors, [Problem(f"{shared_path}: {w.message}", w.key) for w in warnings]


def load_bot_config_only(**kwargs: Any) -> dict[str, Any]:
    """Startup merge: shared + bot file only, one level deep, no defaults (assistant name, llm_retries...)."""
    _, r = _startup_resolver(kwargs)
    bot, shared_path, _ = _bot_and_shared_path(r)
    shared = r.file_layer(shared_path, "shared")
    return merge_layers(layer.data for layer in (shared, bot) if layer is not None)
