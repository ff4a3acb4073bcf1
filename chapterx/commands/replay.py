"""`chapterx replay CASE.json [--json]`: run one activation offline and show what it would do.

The file holds a case `input` (or a whole vector case / vector file entry with `input`): config
files, a Discord world, the trigger, channel state and scripted LLM responses. The activation runs
against an in-memory Discord and a local fake LLM server; the output is the provider requests,
Discord actions and channel state after, in the golden vectors' `expected` shape.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from chapterx.errors import UsageError, UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "replay",
        help="run one activation offline (in-memory Discord, fake LLM) and print requests and actions",
        description="Replay one activation from a case file (a vector case `input`, or a whole case "
        "with `input`) against an in-memory Discord and a local fake LLM server.",
    )
    p.add_argument("case", help="JSON file: a case input, or a case object with `input`")
    p.add_argument("--json", action="store_true", help="print the result as JSON (default: a readable summary)")
    p.add_argument("--case-id", help="when the file is a vector file with `cases`, which case to run")
    p.set_defaults(handler=_handle)


def _load(path: Path, case_id: str | None) -> dict[str, Any]:
    try:
        if path.exists() and not path.is_dir() and not path.is_file():  # a FIFO or device would block
            raise UsageError(f"{path}: not a regular file; expected a JSON case file")
        raw = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; expected a JSON case file") from None
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("cases"), list):
        if not case_id:
            raise UsageError(f"{path} holds {len(data['cases'])} cases; choose one with --case-id")
        for case in data["cases"]:
            if case.get("id") == case_id:
                inp = case.get("input", case) if isinstance(case, dict) else None
                if not isinstance(inp, dict) or "discord" not in inp or "files" not in inp:
                    raise UserError(f"{path}: case {case_id!r} is not an activation case (no `discord` and `files`): "
                                    "replay runs the activation, prompt, provider-request, postprocess, history, "
                                    "tool-plugin and chapter2 discord-runtime vectors")
                return dict(case)
        raise UserError(f"{path}: no case with id {case_id!r}")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    inp = data.get("input", data)
    if not isinstance(inp, dict) or "discord" not in inp or "files" not in inp:
        raise UserError(f"{path}: not a case input (needs `bot_id`, `files`, `discord`, `trigger_message_id`)")
    _check_shape(path, inp)
    return inp


def _check_shape(path: Path, inp: dict[str, Any]) -> None:
    """Name the wrong key up front; deep inside the activation it would be a bare TypeError."""
    if "bot_id" not in inp:
        raise UserError(f"{path}: case input has no `bot_id` (the bot's name, e.g. \"aria\")")
    bot_id = str(inp["bot_id"])
    # The name becomes a file name (bots/<bot_id>.yaml): it must not lead out of the case's files.
    if not bot_id or bot_id in (".", "..") or any(ch in bot_id for ch in "/\\\0"):
        raise UserError(f"{path}: `bot_id` {bot_id!r} must be a plain bot name (no path separators)")
    files = inp["files"]
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in files.items()):
        raise UserError(f"{path}: `files` must be an object of relative path -> file text")
    if not isinstance(inp["discord"], dict):
        raise UserError(f"{path}: `discord` must be an object (guild, channel, users, messages, ...)")
    for key in ("users", "members", "roles", "channels", "emojis", "pins", "messages"):
        value = inp["discord"].get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(x, dict) for x in value)):
            raise UserError(f"{path}: `discord.{key}` must be a list of objects")
    for key in ("llm_responses", "tool_cache"):
        value = inp.get(key)
        if value is not None and not (isinstance(value, list) and all(isinstance(x, dict) for x in value)):
            raise UserError(f"{path}: `{key}` must be a list of objects")
    if inp.get("channel_state") is not None:
        from chapterx.agent.state import ChannelState

        try:
            if not isinstance(inp["channel_state"], dict):
                raise TypeError("not an object")
            ChannelState.from_dict(inp["channel_state"])
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}: `channel_state` is not a valid channel state ({exc})") from None
    if inp.get("now"):
        from datetime import datetime

        try:
            datetime.fromisoformat(str(inp["now"]).replace("Z", "+00:00"))
        except ValueError:
            raise UserError(f"{path}: `now` {inp['now']!r} is not an ISO-8601 time (e.g. 2025-06-01T09:00:00Z)") from None


# Request headers that carry credentials: printed masked, as everywhere else.
_CREDENTIAL_HEADERS = frozenset({"authorization", "x-api-key", "x-goog-api-key", "x-amz-security-token"})


def _mask_headers(out: dict[str, Any]) -> None:
    for req in out.get("provider_requests", []):
        headers = req.get("headers") or {}
        for name in list(headers):
            if name.lower() in _CREDENTIAL_HEADERS:
                headers[name] = "***"


def _summary(out: dict[str, Any]) -> str:
    lines = []
    for i, req in enumerate(out["provider_requests"], 1):
        lines.append(f"provider request {i}: {req['method']} {req['path']}")
        lines.append(json.dumps(req["body"], indent=2, ensure_ascii=False))
    if not out["provider_requests"]:
        lines.append("no provider request")
    lines.append("discord actions:")
    for a in out["discord_actions"]:
        if a["type"] in ("send", "webhook"):
            extra = f" (reply to {a['reply_to']})" if a.get("reply_to") else ""
            files = f" [+{len(a['files'])} file(s)]" if a.get("files") else ""
            lines.append(f"  {a['type']}{extra}{files}: {a['content']}")
        else:
            lines.append(f"  {a['type']} {a.get('message_id', '')} {a.get('emoji', '')}".rstrip())
    if not out["discord_actions"]:
        lines.append("  (none)")
    lines.append("state after: " + json.dumps(out["state_after"]))
    if out.get("error"):
        lines.append(f"error: {out['error']['message']}")
    return "\n".join(lines)


def _bypass_proxy_for_loopback() -> None:
    """The fake LLM server is on 127.0.0.1: an HTTP(S)_PROXY from the environment must not get those
    requests (they would fail, and carry the case's API key to the proxy)."""
    import os

    for var in ("NO_PROXY", "no_proxy"):
        parts = [p for p in os.environ.get(var, "").split(",") if p.strip()]
        for host in ("127.0.0.1", "localhost"):
            if host not in parts:
                parts.append(host)
        os.environ[var] = ",".join(parts)


def _shaped_cases(path: Path, case_id: str | None) -> list[tuple[str, Any, dict[str, Any], Any]] | None:
    """Cases of a registered shape (`chapterx.replays`): (id, shape, input, expected or None) for each
    case to run, or None when the file is a single activation input handled below."""
    from chapterx.replays import shape_for

    if not path.is_file():  # a FIFO would block the read; `_load` explains what is wrong
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None  # `_load` reports it in one line
    if isinstance(data, dict) and isinstance(data.get("cases"), list):
        cases = [c for c in data["cases"] if isinstance(c, dict)]
        if case_id:
            cases = [c for c in cases if c.get("id") == case_id]
            if not cases:
                raise UserError(f"{path}: no case with id {case_id!r}")
    elif isinstance(data, dict):
        cases = [data]
    else:
        return None
    out = []
    for case in cases:
        shape = shape_for(case)
        if shape is None:
            if len(cases) == 1 and case_id is None and "cases" not in data:
                return None
            continue
        inp = case.get("input", case)
        expected = case.get("expected") if "input" in case else None
        out.append((str(case.get("id", path.stem)), shape, inp, expected))
    return out or None


def _run_shaped(cases: list[tuple[str, Any, dict[str, Any], Any]]) -> int:
    """One JSON object per case; `observed` has exactly the keys of the case's `expected` (all the
    shape's keys when the case has none)."""
    import asyncio
    import logging

    for noisy in ("chapterx.agent.activation", "chapterx.agent.runtime", "chapterx.llm", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.CRITICAL)
    for case_id, shape, inp, expected in cases:
        try:
            result = asyncio.run(shape.run(inp))
        except KeyError as exc:
            raise UserError(f"case {case_id}: input is missing {exc}") from None
        if isinstance(expected, dict):
            result = {k: result[k] for k in expected if k in result}
        sys.stdout.write(json.dumps({"id": case_id, "shape": shape.name, "observed": result},
                                    ensure_ascii=False, default=str) + "\n")
    return 0


def _handle(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from chapterx.agent.replay import replay_case

    shaped = _shaped_cases(Path(args.case), args.case_id)
    _bypass_proxy_for_loopback()
    if shaped is not None:
        return _run_shaped(shaped)
    case = _load(Path(args.case), args.case_id)
    for noisy in ("chapterx.agent.activation", "httpx", "httpx2", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    try:
        out = asyncio.run(replay_case(case, fast_retries=True))
    except KeyError as exc:
        raise UserError(f"{args.case}: case input is missing {exc}") from None
    except UserError as exc:
        raise UserError(f"{args.case}: {exc.message}", exc.exit_code) from None
    _mask_headers(out)
    out.pop("warnings", None)
    out.pop("context_fetch", None)
    if args.json:
        sys.stdout.write(json.dumps(out, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(_summary(out) + "\n")
    return 1 if out.get("error") else 0
