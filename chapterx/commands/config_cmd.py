"""`chapterx config show`: print one bot's resolved config, secrets shown as `***`."""

from __future__ import annotations

import argparse
import math
import sys
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("config", help="inspect configuration", description="Inspect configuration.")
    sub = p.add_subparsers(dest="config_command", metavar="SUBCOMMAND")
    sub.required = True
    show = sub.add_parser(
        "show",
        help="print a bot's resolved config",
        description="Resolve a bot's config through all layers and print it (secrets shown as ***).",
    )
    src = show.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="BOT_FILE", help="the bot's YAML file (config root = its folder's parent)")
    src.add_argument("--ems", metavar="DIR", help="an ems folder (chapter2 or ChapterX EMS layout); needs --bot")
    show.add_argument("--bot", metavar="NAME", help="bot / em name (with --ems; overrides the id with --config)")
    show.add_argument("--config-root", metavar="DIR", help="config root (default: CONFIG_PATH or the bot file's grandparent)")
    show.add_argument("--guild", metavar="ID", help="apply this guild's layers")
    show.add_argument("--pin", metavar="TEXT", action="append", default=[],
                      help="a pinned message text ('.config [target]\\n---\\nkey: value'); repeatable, applied in order")
    show.add_argument("--strict", action="store_true", help="treat unknown keys as errors")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--chapter2-home", action="store_true",
                      help="chapter2 ems: also apply ~/.config/chapter2 layers, as chapter2 itself does")
    show.set_defaults(handler=_handle_show)


def _handle_show(args: argparse.Namespace) -> int:
    import re
    from pathlib import Path

    from chapterx.config.load import resolve_bot_config
    from chapterx.config.pins import parse_pin
    from chapterx.config.secrets import mask_secrets
    from chapterx.errors import UsageError, UserError

    if args.ems and not args.bot:
        raise UsageError("--ems needs --bot NAME")
    # The bot name becomes a folder / file name (<ems>/<bot>/, bots/<bot>.yaml): no path tricks.
    if args.bot is not None and (args.bot in ("", ".", "..") or any(ch in args.bot for ch in "/\\\0")):
        raise UsageError(f"--bot {args.bot!r}: expected a bot name (a folder or file name, no path separators)")
    if args.config_root is not None and not Path(args.config_root).is_dir():
        raise UsageError(f"--config-root {args.config_root}: no such folder")
    # The id becomes part of a file name (guilds/<id>.yaml): only a Discord snowflake is safe there.
    if args.guild is not None and not re.fullmatch(r"[0-9]{1,20}", args.guild):
        raise UsageError(f"--guild {args.guild!r}: expected a Discord server id (digits only, e.g. 123456789012345678)")
    pins = [t.replace("\\n", "\n") for t in args.pin]
    for i, text in enumerate(pins):
        if parse_pin(text) is None:
            raise UsageError(f"--pin #{i + 1}: not a .config pin (line 1 '.config [target]', line 2 '---', then YAML)")

    if args.ems:
        ems = Path(args.ems)
        from chapterx_compat.chapter2 import api

        looks = False
        try:
            looks = bool(api.looks_like_chapter2(ems))
        except Exception:  # noqa: BLE001 - a failing probe means "not chapter2"
            looks = False
        if looks:
            translated = api.translate_em(ems, args.bot, home=args.chapter2_home)
            _print({"bot_id": args.bot, "layout": "chapter2", "config": mask_secrets(translated)}, args.json)
            return 0

    from chapterx.config.pins import extract_config_pins

    channel_configs = extract_config_pins(pins, None)
    resolved = resolve_bot_config(
        bot_file=Path(args.config) if args.config else None,
        ems_path=Path(args.ems) if args.ems else None,
        config_root=Path(args.config_root) if args.config_root else None,
        bot_name=args.bot,
        guild_id=args.guild,
        channel_configs=channel_configs,
        strict=args.strict,
    )
    for w in resolved.warnings:
        # A live bot skips a broken pin with a warning; here the user asked about that very pin.
        if w.message.startswith("pin ") and "pinned .config skipped" in w.message:
            raise UserError(f"--{w.message} (a running bot would ignore this pin)")
    for w in resolved.warnings:
        print(f"warning: {w.message}", file=sys.stderr)
    out: dict[str, Any] = {
        "bot_id": resolved.bot_id,
        "layout": resolved.layout,
        "files": [str(p) for p in resolved.paths],
        "config": mask_secrets(resolved.config),
        "vendors": [mask_secrets({"name": v.name, "kind": v.kind, "config": v.config, "provides": v.provides,
                                  **({"formatter": v.formatter} if v.formatter else {})}) for v in resolved.vendors],
    }
    if args.json:
        out["warnings"] = [w.message for w in resolved.warnings]
    _print(out, args.json)
    return 0


def _json_safe(value: Any) -> Any:
    """JSON has no infinity (chapter2's `.inf` token limits): write it as the string "Infinity",
    as the JSON Schemas do, instead of the bare `Infinity` token strict parsers reject."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _print(out: dict[str, Any], as_json: bool) -> None:
    import json

    if as_json:
        print(json.dumps(_json_safe(out), indent=2, ensure_ascii=False, allow_nan=False))
        return
    from io import StringIO

    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.allow_unicode = True
    setattr(y, "sort_base_mapping_type_on_output", False)  # noqa: B010 - keep the schema's key order
    header = [f"# bot: {out.get('bot_id')}  (layout: {out.get('layout')})"]
    for f in out.get("files", []):
        header.append(f"# read: {f}")
    buf = StringIO()
    body = {k: out[k] for k in ("config", "vendors") if k in out}
    y.dump(body, buf)
    print("\n".join(header))
    print(buf.getvalue(), end="")
