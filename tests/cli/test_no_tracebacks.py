"""Cross-command bad-input sweep through the real CLI (`python -m chapterx` in a subprocess).

The project rule: bad input gets ONE clear line naming the file, key or value to fix, exit 1
(invalid input) or 2 (usage / unreadable path), never a traceback, and secrets never show up in
any output. Every case below breaks one thing and checks exactly that. All subprocesses run once,
in parallel, in a module fixture (the whole sweep takes a few seconds of wall time); each case is
then its own test so a failure names the command.

No case can reach the network: Discord and LLM base URLs and proxies point at a closed loopback
port, HOME / LOGS_DIR / CACHE_PATH / TRACE_INDEX_PATH point into the test's temporary folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES_DIR

FIX = FIXTURES_DIR / "cli"
SECRET = "sk-ant-TESTSECRET123"
GOOD_BOT = "name: Aria\ncontinuation_model: claude-sonnet-4-5-20250929\n"
# "path: error: ...", "chapterx: error: ...", "chapterx traces prune: error: ...", replay's "error: ..."
ERROR_LINE = re.compile(r"(?:^|: )error: ")
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class Case:
    """One command line with bad input and what its one error line must say."""

    argv: list[str]
    codes: tuple[int, ...]
    mentions: tuple[str, ...]  # substrings of the error line(s); "{T}" is the case folder
    env: dict[str, str] = field(default_factory=dict)
    lines: int = 1  # error lines expected (one per offending file)
    secret: bool = False  # SECRET is in the input: must appear nowhere in the output
    timeout: float = 30.0
    xfail: str | None = None
    skip: str | None = None
    setup: Callable[[Path], object] | None = None  # builds the case's files in {T}
    keeps: dict[str, str] = field(default_factory=dict)  # files (relative to {T}) that must survive unchanged


@dataclass
class Result:
    code: int | None
    out: str
    err: str
    seconds: float
    kept: dict[str, str | None] = field(default_factory=dict)  # content of `keeps` files after the run


def _closed_port() -> int:
    """A loopback port nothing listens on (bound then released), so connects fail fast."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _dir_instead_of_file(path: Path) -> Path:
    path.unlink()
    return _mkdir(path)


def _fifo(path: Path) -> Path:
    """A named pipe where a file belongs: reading it would block forever."""
    if path.exists():
        path.unlink()
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(path)
    return path


def _chmod0(path: Path) -> Path:
    path.chmod(0)
    return path


def _config_tree(t: Path, bot: str | None = None, shared: str | None = None) -> Path:
    shutil.copytree(FIX / "config", t / "config")
    if bot is not None:
        _write(t / "config" / "bots" / "aria.yaml", bot)
    if shared is not None:
        _write(t / "config" / "shared.yaml", shared)
    return t / "config"


def _replay_case(t: Path, mutate: Callable[[dict], object] | None = None, raw: str | bytes | None = None) -> None:
    if raw is not None:
        _write(t / "case.json", raw)
        return
    case = json.loads((FIX / "replay-case.json").read_text(encoding="utf-8"))
    if mutate is not None:
        mutate(case)
    _write(t / "case.json", json.dumps(case))


def _ems(t: Path, broken: bool = False) -> Path:
    """A small chapter2 ems/ folder with two ems; token files and vendors.yaml hold SECRET."""
    ems = t / "ems"
    _write(ems / "config.yaml", "temperature: 0.8\n")
    _write(ems / "vendors.yaml", f"anthropic:\n  config:\n    anthropic_api_key: {SECRET}\n  provides: ['claude-.*']\n")
    for em in ("wren", "kite"):
        _write(ems / em / "config.yaml", "name: " + em + "\ncontinuation_model: claude-sonnet-4-5-20250929\n")
        _write(ems / em / "discord_token", SECRET + "\n")
    if broken:
        _write(ems / "kite" / "config.yaml", "name: kite\ncontinuation_model: [claude\n")
    return ems


def _logs(t: Path, index: str | bytes | None = None) -> Path:
    shutil.copytree(FIXTURES_DIR / "traces" / "mini-logs" / "logs", t / "logs")
    if index is not None:
        _write(t / "logs" / "traces" / "index.jsonl", index)
    return t / "logs"


def _cases() -> dict[str, Case]:
    c: dict[str, Case] = {}
    bot = "{T}/config/bots/aria.yaml"
    root = "{T}/config"

    # --- validate -------------------------------------------------------------------------------
    c["validate-missing-path"] = Case(["validate", "{T}/nope.yaml"], (2,), ("{T}/nope.yaml", "not found"))
    c["validate-dir-of-garbage"] = Case(
        ["validate", "{T}/junk"], (1,), ("{T}/junk/",), lines=2,
        setup=lambda t: (_write(t / "junk" / "a.yaml", bytes(range(256)) * 8),
                         _write(t / "junk" / "b.yaml", "::: [\n\t- {\n")))
    c["validate-binary-file"] = Case(["validate", "{T}/bin.yaml"], (1,), ("{T}/bin.yaml", "binary"),
                                     setup=lambda t: _write(t / "bin.yaml", b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe" * 40))
    c["validate-empty-file"] = Case(["validate", "{T}/empty.yaml"], (1,), ("{T}/empty.yaml", "empty"),
                                    setup=lambda t: _write(t / "empty.yaml", ""))
    c["validate-bot-file-is-a-dir"] = Case(
        ["validate", root], (2,), (bot, "directory"),
        setup=lambda t: (_config_tree(t), _dir_instead_of_file(t / "config" / "bots" / "aria.yaml")))
    c["validate-unreadable-file"] = Case(
        ["validate", bot], (2,), (bot, "permission denied"), skip="root reads any file" if IS_ROOT else None,
        setup=lambda t: (_config_tree(t), _chmod0(t / "config" / "bots" / "aria.yaml")))
    c["validate-huge-file"] = Case(["validate", "{T}/huge.yaml"], (1,), ("{T}/huge.yaml", "too large"),
                                   setup=lambda t: _write(t / "huge.yaml", ("#" * 1023 + "\n") * 4096))
    c["validate-secret-in-bad-shared"] = Case(
        ["validate", root], (1,), ("{T}/config/shared.yaml", "vendors.anthropic.provides"), secret=True,
        setup=lambda t: _config_tree(t, shared=f"vendors:\n  anthropic:\n    config: {{anthropic_api_key: {SECRET}}}\n"
                                              "    provides: claude-*\n"))
    c["validate-secret-pasted-as-config"] = Case(
        ["validate", root], (1,), ("{T}/config/shared.yaml", "vendors.anthropic.config"), secret=True,
        setup=lambda t: _config_tree(t, shared=f"vendors:\n  anthropic:\n    config: {SECRET}\n"))
    c["validate-secret-duplicate-key"] = Case(
        ["validate", root], (1,), ("{T}/config/shared.yaml", "anthropic_api_key"), secret=True,
        setup=lambda t: _config_tree(t, shared=f"vendors:\n  anthropic:\n    config:\n      anthropic_api_key: {SECRET}\n"
                                              f"      anthropic_api_key: {SECRET}\n"))

    c["validate-secret-in-enum-field"] = Case(
        ["validate", root], (1,), ("{T}/config/shared.yaml", "vendors.anthropic.formatter"), secret=True,
        setup=lambda t: _config_tree(t, shared=f"vendors:\n  anthropic:\n    config: {{anthropic_api_key: x}}\n"
                                              f"    formatter: {SECRET}\n"))
    c["validate-secret-pasted-as-key"] = Case(
        ["validate", "--strict", root], (1,), ("{T}/config/shared.yaml", "unknown key"), secret=True,
        setup=lambda t: _config_tree(t, shared=f"vendors: {{}}\n{SECRET}:\n"))
    c["validate-secret-from-env-wrong-type"] = Case(
        ["validate", root], (1,), ("{T}/config/bots/aria.yaml", "max_tokens"), secret=True, env={"MYKEY": SECRET},
        setup=lambda t: _config_tree(t, bot=GOOD_BOT + "max_tokens: ${MYKEY}\n"))

    no_fifo = None if hasattr(os, "mkfifo") else "needs named pipes"
    c["validate-fifo-in-config-root"] = Case(["validate", root], (2,), (bot, "not a regular file"), timeout=15,
                                             skip=no_fifo, setup=lambda t: (_config_tree(t), _fifo(t / "config" / "bots" / "aria.yaml")))
    c["validate-char-device"] = Case(["validate", "/dev/zero"], (2,), ("/dev/zero",), timeout=15,
                                     skip=None if Path("/dev/zero").exists() else "no /dev/zero")
    c["validate-fifo-in-em"] = Case(["validate", "{T}/ems"], (1, 2), ("{T}/ems/kite/config.yaml",), timeout=15,
                                    secret=True, skip=no_fifo,
                                    setup=lambda t: (_ems(t), _fifo(t / "ems" / "kite" / "config.yaml")))

    # --- config show ------------------------------------------------------------------------------
    c["config-show-no-source"] = Case(["config", "show"], (2,), ("--config",))
    c["config-show-bot-file-missing"] = Case(["config", "show", "--config", "{T}/config/bots/nope.yaml"], (2,),
                                             ("{T}/config/bots/nope.yaml", "not found"))
    c["config-show-ems-without-bot"] = Case(["config", "show", "--ems", "{T}/ems"], (2,), ("--ems", "--bot"),
                                            setup=lambda t: _ems(t))
    c["config-show-pin-bad-yaml"] = Case(
        ["config", "show", "--config", bot, "--pin", ".config\n---\ntemperature: [0.5\n"], (1, 2), ("--pin", "YAML"),
        secret=True, setup=lambda t: _config_tree(t))
    c["config-show-pin-bad-value"] = Case(
        ["config", "show", "--config", bot, "--pin", f".config aria\n---\napi_key: {SECRET}\ntemperature: 9\n"],
        (1, 2), ("--pin", "temperature"), secret=True, setup=lambda t: _config_tree(t))
    c["config-show-pin-not-a-pin"] = Case(["config", "show", "--config", bot, "--pin", "temperature: 0.2"], (2,),
                                          ("--pin",), setup=lambda t: _config_tree(t))
    for name, guild in (("traversal", "../../../etc/passwd"), ("glob", "*"), ("newline", "12\n34"),
                        ("spaces", "12 34"), ("empty", "")):
        c[f"config-show-guild-{name}"] = Case(["config", "show", "--config", bot, "--guild", guild], (2,),
                                              ("--guild",), setup=lambda t: _config_tree(t))
    c["config-show-bot-dotdot"] = Case(["config", "show", "--ems", "{T}/ems", "--bot", ".."], (2,), ("--bot", ".."),
                                       secret=True, setup=lambda t: _ems(t))
    c["config-show-bot-path"] = Case(["config", "show", "--config", bot, "--bot", "../../x"], (2,), ("--bot", "../../x"),
                                     setup=lambda t: _config_tree(t))
    c["config-show-config-root-missing"] = Case(["config", "show", "--config", bot, "--config-root", "{T}/nowhere"],
                                                (2,), ("--config-root", "{T}/nowhere"), setup=lambda t: _config_tree(t))
    c["config-show-bad-bot-secret-shared"] = Case(
        ["config", "show", "--config", bot], (1,), (bot, "temperature"), secret=True,
        setup=lambda t: _config_tree(t, bot=GOOD_BOT + "temperature: hot\n"))
    c["config-show-secret-pasted-as-key-strict"] = Case(
        ["config", "show", "--strict", "--config", bot], (1,), ("{T}/config/shared.yaml", "unknown key"), secret=True,
        setup=lambda t: _config_tree(t, shared=f"vendors: {{}}\n{SECRET}:\n"))
    c["config-show-fifo"] = Case(["config", "show", "--config", bot], (2,), (bot, "not a regular file"), timeout=15,
                                 skip=no_fifo, setup=lambda t: (_config_tree(t), _fifo(t / "config" / "bots" / "aria.yaml")))
    c["config-show-bot-is-dir"] = Case(
        ["config", "show", "--config", "{T}/config/bots"], (2,), ("{T}/config/bots", "directory"),
        setup=lambda t: _config_tree(t))

    # --- schema -----------------------------------------------------------------------------------
    c["schema-unknown"] = Case(["schema", "no-such-schema"], (2,), ("no-such-schema",))
    c["schema-path-like"] = Case(["schema", "../pyproject"], (2,), ("../pyproject",))

    # --- migrate ----------------------------------------------------------------------------------
    c["migrate-missing-dir"] = Case(["migrate", "{T}/nope", "--out", "{T}/out"], (2,), ("{T}/nope",))
    c["migrate-ems-is-file"] = Case(["migrate", "{T}/f", "--out", "{T}/out"], (2,), ("{T}/f",),
                                    setup=lambda t: _write(t / "f", "x"))
    c["migrate-out-inside-ems"] = Case(["migrate", "{T}/ems", "--out", "{T}/ems/out"], (2,), ("{T}/ems/out",),
                                       secret=True, setup=lambda t: _ems(t))
    c["migrate-out-is-file"] = Case(["migrate", "{T}/ems", "--out", "{T}/f"], (2,), ("{T}/f",), secret=True,
                                    keeps={"f": "x"},
                                    setup=lambda t: (_ems(t), _write(t / "f", "x")))
    c["migrate-out-not-empty"] = Case(["migrate", "{T}/ems", "--out", "{T}/o"], (2,), ("{T}/o", "--force"),
                                      secret=True, keeps={"o/keep.txt": "mine"},
                                      setup=lambda t: (_ems(t), _write(t / "o" / "keep.txt", "mine")))
    c["migrate-unknown-em"] = Case(["migrate", "{T}/ems", "--out", "{T}/o", "--bots", "wren,nosuch"], (2,),
                                   ("--bots", "nosuch"), secret=True, setup=lambda t: _ems(t))
    c["migrate-broken-em-yaml"] = Case(["migrate", "{T}/ems", "--out", "{T}/o"], (1,),
                                       ("{T}/ems/kite/config.yaml",), secret=True, setup=lambda t: _ems(t, broken=True))
    c["migrate-fifo-in-em"] = Case(["migrate", "{T}/ems", "--out", "{T}/o"], (1, 2), ("{T}/ems/kite/config.yaml",),
                                   timeout=15, secret=True, skip=no_fifo,
                                   setup=lambda t: (_ems(t), _fifo(t / "ems" / "kite" / "config.yaml")))
    c["migrate-no-out"] = Case(["migrate", "{T}/ems"], (2,), ("--out",), setup=lambda t: _ems(t))

    # --- replay -----------------------------------------------------------------------------------
    def drop(key: str) -> Callable[[dict], object]:
        return lambda d: d.pop(key)

    def set_(key: str, value: object) -> Callable[[dict], object]:
        return lambda d: d.__setitem__(key, value)

    def bot_yaml(text: str) -> Callable[[dict], object]:
        return lambda d: d["files"].__setitem__("config/bots/aria.yaml", text)

    case = "{T}/case.json"
    c["replay-missing-file"] = Case(["replay", "{T}/nope.json"], (2,), ("{T}/nope.json",))
    c["replay-dir"] = Case(["replay", "{T}"], (2,), ("{T}",))
    c["replay-fifo"] = Case(["replay", case], (2,), (case,), timeout=15, skip=no_fifo, setup=lambda t: _fifo(t / "case.json"))
    c["replay-not-json"] = Case(["replay", case], (1,), (case, "JSON"),
                                setup=lambda t: _replay_case(t, raw='{"bot_id": "aria", '))
    c["replay-binary"] = Case(["replay", case], (1,), (case,),
                              setup=lambda t: _replay_case(t, raw=b"\xff\xfe\x00garbage\x89"))
    c["replay-json-list"] = Case(["replay", case], (1,), (case,), setup=lambda t: _replay_case(t, raw="[1, 2]"))
    c["replay-input-not-object"] = Case(["replay", case], (1,), (case,),
                                        setup=lambda t: _replay_case(t, raw='{"input": 5}'))
    c["replay-missing-bot-id"] = Case(["replay", case], (1,), (case, "bot_id"),
                                      setup=lambda t: _replay_case(t, drop("bot_id")))
    c["replay-discord-wrong-type"] = Case(["replay", case], (1,), (case, "discord"), secret=True,
                                          setup=lambda t: _replay_case(t, set_("discord", "nope")))
    c["replay-files-wrong-type"] = Case(["replay", case], (1,), (case, "files"), secret=True,
                                        setup=lambda t: _replay_case(t, set_("files", ["config/bots/aria.yaml"])))
    c["replay-messages-wrong-type"] = Case(
        ["replay", case], (1,), (case, "messages"), secret=True,
        setup=lambda t: _replay_case(t, lambda d: d["discord"].__setitem__("messages", {"a": 1})))
    c["replay-vector-not-an-activation"] = Case(  # e.g. a config-resolution vector picked with --case-id
        ["replay", case, "--case-id", "cfg-1"], (1,), (case, "cfg-1", "not an activation case"),
        setup=lambda t: _replay_case(t, raw='{"cases": [{"id": "cfg-1", "input": {"files": {}}, "expected": {}}]}'))
    c["replay-now-not-a-time"] = Case(["replay", case], (1,), (case, "now", "garbage"),
                                      setup=lambda t: _replay_case(t, set_("now", "garbage")))
    c["replay-llm-responses-strings"] = Case(["replay", case], (1,), (case, "llm_responses"),
                                             setup=lambda t: _replay_case(t, set_("llm_responses", ["pong"])))
    c["replay-channel-state-bad"] = Case(["replay", case], (1,), (case, "channel_state"),
                                         setup=lambda t: _replay_case(t, set_("channel_state",
                                                                              {"messages_since_roll": "x"})))
    c["replay-bot-id-path"] = Case(["replay", case], (1,), (case, "bot_id"),
                                   setup=lambda t: _replay_case(t, set_("bot_id", "../../../config/bots/aria")))
    c["replay-message-without-id"] = Case(["replay", case], (1,), (case, "id"),
                                          setup=lambda t: _replay_case(t, lambda d: d["discord"]["messages"][0].pop("id")))
    c["replay-unknown-model"] = Case(
        ["replay", case], (1,), ("nosuch-vendor/model-x",), secret=True,
        setup=lambda t: _replay_case(t, bot_yaml("name: Aria\ncontinuation_model: nosuch-vendor/model-x\n")))
    c["replay-llm-responses-run-out"] = Case(
        ["replay", case], (1,), ("no scripted response left",), secret=True,
        setup=lambda t: _replay_case(t, set_("llm_responses", [])))
    c["replay-llm-responses-run-out-json"] = Case(
        ["replay", "--json", case], (1,), (), lines=0, secret=True,
        setup=lambda t: _replay_case(t, set_("llm_responses", [])))
    c["replay-bad-bot-yaml"] = Case(["replay", case], (1,), ("config/bots/aria.yaml",), secret=True,
                                    setup=lambda t: _replay_case(t, bot_yaml("temperature: [\n")))
    c["replay-cases-without-id"] = Case(["replay", case], (2,), (case, "--case-id"),
                                        setup=lambda t: _replay_case(t, raw='{"cases": [{"id": "a", "input": {}}]}'))
    c["replay-unknown-case-id"] = Case(["replay", case, "--case-id", "zz"], (1,), (case, "zz"),
                                       setup=lambda t: _replay_case(t, raw='{"cases": [{"id": "a", "input": {}}]}'))

    # --- traces -----------------------------------------------------------------------------------
    for sub, extra in (("list", []), ("stats", []), ("search", ["123"]), ("show", ["0badc0de"]),
                       ("request", ["0badc0de"]), ("response", ["0badc0de"]), ("logs", ["0badc0de"]),
                       ("prune", ["--older-than", "7d", "--dry-run"])):
        c[f"traces-{sub}-missing-logs"] = Case(["traces", sub, "--logs-dir", "{T}/nologs", *extra], (2,),
                                               ("{T}/nologs",))
        c[f"traces-{sub}-logs-is-file"] = Case(["traces", sub, "--logs-dir", "{T}/f", *extra], (2,), ("{T}/f",),
                                               setup=lambda t: _write(t / "f", "not a folder"))
    c["traces-list-env-logs-missing"] = Case(["traces", "list"], (2,), ("{T}/envlogs",),
                                             env={"LOGS_DIR": "{T}/envlogs"})
    for sub in ("show", "request", "response", "logs"):
        c[f"traces-{sub}-unknown-id"] = Case(["traces", sub, "--logs-dir", "{T}/logs", "feedface"], (1,),
                                             ("feedface",), setup=lambda t: _logs(t))
        c[f"traces-{sub}-garbage-index"] = Case(
            ["traces", sub, "--logs-dir", "{T}/logs", "feedface"], (1,), ("feedface",),
            setup=lambda t: _logs(t, index=b'garbage\n{"traceId":\n\x00\x01\xff\n[1,2]\n'))
    c["traces-show-path-like-id"] = Case(["traces", "show", "--logs-dir", "{T}/logs", "../../../etc/passwd"], (1,),
                                         ("../../../etc/passwd",), setup=lambda t: _logs(t))
    # --index naming a folder or a file that is not SQLite (the user's file must survive untouched).
    for sub, extra in (("list", []), ("stats", []), ("show", ["0badc0de"])):
        c[f"traces-{sub}-index-not-sqlite"] = Case(
            ["traces", sub, "--logs-dir", "{T}/logs", "--index", "{T}/notes.txt", *extra], (1, 2), ("{T}/notes.txt",),
            keeps={"notes.txt": "my notes\n"},
            setup=lambda t: (_logs(t), _write(t / "notes.txt", "my notes\n")))
        c[f"traces-{sub}-index-is-dir"] = Case(
            ["traces", sub, "--logs-dir", "{T}/logs", "--index", "{T}/idxdir", *extra], (1, 2), ("{T}/idxdir",),
            setup=lambda t: (_logs(t), _mkdir(t / "idxdir")))
    c["traces-list-index-jsonl-fifo"] = Case(
        ["traces", "list", "--logs-dir", "{T}/logs"], (0, 1, 2), ("index.jsonl",), timeout=8,
        skip=None if hasattr(os, "mkfifo") else "needs named pipes",
        setup=lambda t: (_logs(t), _fifo(t / "logs" / "traces" / "index.jsonl")))
    for flag, value in (("--since", "yesterday"), ("--until", "5x"), ("--since", "2026-13-45")):
        c[f"traces-list-bad{flag}-{value}"] = Case(["traces", "list", "--logs-dir", "{T}/logs", flag, value], (2,),
                                                  (value,), setup=lambda t: _logs(t))
    c["traces-list-since-huge-duration"] = Case(["traces", "list", "--logs-dir", "{T}/logs", "--since", "99999999d"],
                                                (2,), ("99999999d",), setup=lambda t: _logs(t))
    c["traces-prune-older-than-huge"] = Case(
        ["traces", "prune", "--logs-dir", "{T}/logs", "--older-than", "99999999999d", "--dry-run"], (2,),
        ("99999999999d",), setup=lambda t: _logs(t))
    c["traces-list-bad-limit"] = Case(["traces", "list", "--logs-dir", "{T}/logs", "--limit", "-5"], (2,),
                                      ("--limit",), setup=lambda t: _logs(t))
    for value in ("soon", "7 weeks", "=-3d"):
        c[f"traces-prune-bad-older-than-{value}"] = Case(
            ["traces", "prune", "--logs-dir", "{T}/logs", f"--older-than{value}" if value.startswith("=") else
             "--older-than", *([] if value.startswith("=") else [value])], (2,), (value.lstrip("="),),
            setup=lambda t: _logs(t))
    for sub in ("request", "response"):
        c[f"traces-{sub}-call-out-of-range"] = Case(
            ["traces", sub, "--logs-dir", "{T}/logs", "0badc0de", "--call", "99"], (1,), ("0badc0de", "99"),
            setup=lambda t: _logs(t))
        c[f"traces-{sub}-call-negative"] = Case(
            ["traces", sub, "--logs-dir", "{T}/logs", "0badc0de", "--call=-1"], (1,), ("-1",),
            setup=lambda t: _logs(t))
        c[f"traces-{sub}-call-not-int"] = Case(
            ["traces", sub, "--logs-dir", "{T}/logs", "0badc0de", "--call", "abc"], (2,), ("--call", "abc"),
            setup=lambda t: _logs(t))

    # --- traces serve (must refuse before listening; a timeout kills any server left) -------------
    serve = ["traces", "serve", "--logs-dir", "{T}/logs"]
    c["serve-env-port-not-int"] = Case(serve, (2,), ("PORT", "abc"), env={"PORT": "abc"}, timeout=15,
                                       setup=lambda t: _logs(t))
    c["serve-env-port-too-big"] = Case(serve, (2,), ("PORT", "99999"), env={"PORT": "99999"}, timeout=15,
                                       setup=lambda t: _logs(t))
    c["serve-port-too-big"] = Case([*serve, "--port", "99999"], (2,), ("99999",), timeout=15, setup=lambda t: _logs(t))
    c["serve-port-negative"] = Case([*serve, "--port=-1"], (2,), ("-1",), timeout=15, setup=lambda t: _logs(t))
    c["serve-port-not-int"] = Case([*serve, "--port", "http"], (2,), ("--port",), timeout=15,
                                   setup=lambda t: _logs(t))
    c["serve-public-host-no-token"] = Case([*serve, "--host", "0.0.0.0", "--port", "0"], (2,),
                                           ("0.0.0.0", "AUTH_TOKEN"), timeout=15, setup=lambda t: _logs(t))
    c["serve-env-public-host-no-token"] = Case([*serve, "--port", "0"], (2,), ("0.0.0.0", "AUTH_TOKEN"),
                                               env={"HOST": "0.0.0.0"}, timeout=15, setup=lambda t: _logs(t))
    c["serve-ipv6-public-no-token"] = Case([*serve, "--host", "::", "--port", "0"], (2,), ("::", "AUTH_TOKEN"),
                                           timeout=15, setup=lambda t: _logs(t))
    c["serve-bad-retention"] = Case([*serve, "--port", "0"], (2,), ("INDEX_RETENTION_DAYS",),
                                    env={"INDEX_RETENTION_DAYS": "forever"}, timeout=15, setup=lambda t: _logs(t))
    c["serve-token-bad-port-secret"] = Case(serve, (2,), ("PORT",), secret=True, timeout=15,
                                            env={"HOST": "0.0.0.0", "AUTH_TOKEN": SECRET, "PORT": "99999"},
                                            setup=lambda t: _logs(t))
    c["serve-index-not-sqlite"] = Case([*serve, "--port", "0", "--index", "{T}/notes.txt"], (2,), ("{T}/notes.txt",),
                                       timeout=15, keeps={"notes.txt": "my notes\n"},
                                       setup=lambda t: (_logs(t), _write(t / "notes.txt", "my notes\n")))
    c["serve-env-index-is-dir"] = Case([*serve, "--port", "0"], (2,), ("{T}/idxdir", "TRACE_INDEX_PATH"),
                                       env={"TRACE_INDEX_PATH": "{T}/idxdir"}, timeout=15,
                                       setup=lambda t: (_logs(t), _mkdir(t / "idxdir")))
    c["serve-unresolvable-host"] = Case([*serve, "--host", "no such host!", "--port", "0"], (2,),
                                        ("no such host!",), env={"AUTH_TOKEN": SECRET}, secret=True, timeout=15,
                                        setup=lambda t: _logs(t))

    # --- run (never leaves loopback: Discord and LLM URLs point at a closed local port) -----------
    # `chapterx run` is implemented: its cases always run (no source-text sniffing that a refactor
    # could silently turn into 14 skips).
    skip_run: str | None = None
    c["run-no-bot"] = Case(["run"], (2,), ("--config",), skip=skip_run)
    c["run-token-file-missing"] = Case(["run", "--config", bot], (2,), ("{T}/tok",), skip=skip_run,
                                       env={"DISCORD_TOKEN_FILE": "{T}/tok"}, setup=lambda t: _config_tree(t))
    c["run-token-file-is-dir"] = Case(["run", "--config", bot], (2,), ("{T}/tokdir",), skip=skip_run,
                                      env={"DISCORD_TOKEN_FILE": "{T}/tokdir"},
                                      setup=lambda t: (_config_tree(t), _mkdir(t / "tokdir")))
    c["run-token-file-fifo"] = Case(
        ["run", "--config", bot], (2,), ("{T}/tok",), skip=skip_run or no_fifo, env={"DISCORD_TOKEN_FILE": "{T}/tok"},
        timeout=8, setup=lambda t: (_config_tree(t), _fifo(t / "tok")))
    c["run-token-file-binary"] = Case(
        ["run", "--config", bot], (1, 2), ("{T}/tok",), skip=skip_run, secret=True,
        env={"DISCORD_TOKEN_FILE": "{T}/tok"},
        setup=lambda t: (_config_tree(t), _write(t / "tok", b"\xff\xfe\x00" + SECRET.encode())))
    c["run-token-file-empty"] = Case(["run", "--config", bot], (1, 2), ("{T}/tok",), skip=skip_run,
                                     env={"DISCORD_TOKEN_FILE": "{T}/tok"},
                                     setup=lambda t: (_config_tree(t), _write(t / "tok", "\n")))
    c["run-bad-config-with-token"] = Case(["run", "--config", bot], (1,), (bot, "temperature"), skip=skip_run,
                                          secret=True, env={"DISCORD_TOKEN_FILE": "{T}/tok"},
                                          setup=lambda t: (_config_tree(t, bot=GOOD_BOT + "temperature: hot\n"),
                                                           _write(t / "tok", SECRET + "\n")))
    c["run-bot-file-is-dir"] = Case(["run", "--config", "{T}/config/bots"], (2,), ("{T}/config/bots",),
                                    skip=skip_run, setup=lambda t: _config_tree(t))
    c["run-unknown-model"] = Case(["run", "--config", bot], (1,), ("nosuch-vendor/model-x",), skip=skip_run,
                                  secret=True, env={"DISCORD_TOKEN_FILE": "{T}/tok"},
                                  setup=lambda t: (_config_tree(t, bot="name: Aria\ncontinuation_model: "
                                                                       "nosuch-vendor/model-x\n"),
                                                   _write(t / "tok", SECRET + "\n")))
    c["run-discord-unreachable"] = Case(["run", "--config", bot], (1,), ("Discord",), skip=skip_run, secret=True,
                                        env={"DISCORD_TOKEN_FILE": "{T}/tok"}, timeout=30,
                                        setup=lambda t: (_config_tree(t), _write(t / "tok", SECRET + "\n")))
    c["run-ems-broken-em"] = Case(["run", "--ems", "{T}/ems", "--bot", "kite"], (1,), ("{T}/ems/kite/config.yaml",),
                                  skip=skip_run, secret=True, setup=lambda t: _ems(t, broken=True))
    c["run-ems-bot-dotdot"] = Case(["run", "--ems", "{T}/ems", "--bot", ".."], (2,), ("..",), skip=skip_run,
                                   secret=True, setup=lambda t: _ems(t))
    c["run-env-bot-name-path"] = Case(["run"], (2,), ("../../x", "BOT_NAME"), skip=skip_run,
                                      env={"BOT_NAME": "../../x", "CONFIG_PATH": "{T}/config"},
                                      setup=lambda t: _config_tree(t))
    c["run-ems-unknown-em"] = Case(["run", "--ems", "{T}/ems", "--bot", "nosuch"], (1, 2), ("--bot:", "nosuch"),
                                   skip=skip_run, secret=True, setup=lambda t: _ems(t))

    # --- fleet ------------------------------------------------------------------------------------
    c["fleet-status-missing-root"] = Case(["fleet", "status", "--config-root", "{T}/nope"], (2,), ("{T}/nope",))
    c["fleet-status-not-ems"] = Case(["fleet", "status", "--ems", "{T}/plain"], (2,), ("{T}/plain", "ems"),
                                     setup=lambda t: _mkdir(t / "plain"))
    c["fleet-units-out-is-file"] = Case(["fleet", "units", "--out", "{T}/f"], (2,), ("{T}/f",),
                                        setup=lambda t: _write(t / "f", "keep\n"), keeps={"f": "keep\n"})
    c["fleet-units-relative-prefix"] = Case(["fleet", "units", "--out", "{T}/u", "--prefix", "opt/x"], (2,),
                                            ("--prefix", "opt/x"))
    c["fleet-units-bad-user"] = Case(["fleet", "units", "--out", "{T}/u", "--user", "a b;rm"], (2,),
                                     ("--user", "a b;rm"))
    return c


CASES = _cases()


def _env(base: Path, t: Path, extra: dict[str, str], closed: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.endswith(("_API_KEY", "_TOKEN", "_TOKEN_FILE")) and not k.startswith(("AWS_", "CHAPTERX_"))}
    for k in ("HOST", "PORT", "LOGS_DIR", "LOGS_DIRS", "TRACE_DIR", "BOT_CONFIG", "BOT_NAME", "CONFIG_PATH",
              "EMS_PATH", "INDEX_RETENTION_DAYS", "CHAPTER2_LOGS_DIRS", "API_BEARER_TOKEN"):
        env.pop(k, None)
    dead = f"http://127.0.0.1:{closed}"
    env.update({
        "HOME": str(base / "home"), "LOGS_DIR": str(t / "default-logs"), "CACHE_PATH": str(t / "cache"),
        "TOOLS_PATH": str(t / "tools"), "TRACE_INDEX_PATH": str(t / "index.sqlite"),
        "XDG_CACHE_HOME": str(base / "home" / ".cache"), "XDG_CONFIG_HOME": str(base / "home" / ".config"),
        "CHAPTERX_DISCORD_API": f"{dead}/api", "CHAPTERX_LLM_BASE_URL": dead,
        "HTTP_PROXY": dead, "HTTPS_PROXY": dead, "ALL_PROXY": dead, "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1",
    })
    env.update({k: v.replace("{T}", str(t)) for k, v in extra.items()})
    return env


def _run(name: str, case: Case, base: Path, closed: int) -> Result:
    t = base / name
    t.mkdir(parents=True)
    if case.setup is not None:
        case.setup(t)
    argv = [a.replace("{T}", str(t)) for a in case.argv]
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "chapterx", *argv], cwd=t, env=_env(base, t, case.env, closed),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=case.timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # our own process group only
        out, err = proc.communicate()
        code = None
    finally:
        for p in t.rglob("*"):  # undo chmod 0 so pytest can clean up
            if not p.is_symlink():
                p.chmod(0o755 if p.is_dir() else 0o644)
    kept = {rel: (t / rel).read_text(encoding="utf-8") if (t / rel).is_file() else None for rel in case.keeps}
    return Result(code, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"), time.monotonic() - start,
                  kept)


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Result]:
    base = tmp_path_factory.mktemp("cli-sweep")
    closed = _closed_port()
    todo = {n: c for n, c in CASES.items() if c.skip is None}
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 3)) as pool:
        futures = {n: pool.submit(_run, n, c, base, closed) for n, c in todo.items()}
        done = {n: f.result() for n, f in futures.items()}
    for n, r in done.items():
        r.out = r.out.replace(str(base / n), "{T}")
        r.err = r.err.replace(str(base / n), "{T}")
    return done


def _params() -> list[Any]:
    out: list[Any] = []
    for name, case in CASES.items():
        marks = []
        if case.skip:
            marks.append(pytest.mark.skip(reason=case.skip))
        if case.xfail:
            marks.append(pytest.mark.xfail(strict=True, reason=case.xfail))
        out.append(pytest.param(name, id=name, marks=marks))
    return out


@pytest.mark.parametrize("name", _params())
def test_bad_input_gives_one_clear_line(name: str, results: dict[str, Result]) -> None:
    case, res = CASES[name], results[name]
    shown = f"exit={res.code}\n--- stdout\n{res.out[-3000:]}\n--- stderr\n{res.err[-3000:]}"
    assert res.code is not None, f"did not finish within {case.timeout}s (killed)\n{shown}"
    assert "Traceback" not in res.out + res.err, shown
    assert res.code in case.codes, shown
    errors = [ln for ln in (res.out + "\n" + res.err).splitlines() if ERROR_LINE.search(ln)]
    assert len(errors) == case.lines, shown
    for line in errors:
        for m in case.mentions:
            assert m in line, f"{m!r} not in {line!r}\n{shown}"
    if case.secret:
        assert SECRET not in res.out and SECRET not in res.err, shown
    for rel, content in case.keeps.items():
        assert res.kept[rel] == content, f"{rel} was changed or removed\n{shown}"


def test_sweep_covers_every_command() -> None:
    """The sweep must keep exercising each command the brief lists (guards against cases vanishing)."""
    firsts = {c.argv[0] if c.argv[0] != "traces" else " ".join(c.argv[:2]) for c in CASES.values()}
    for cmd in ("validate", "config", "schema", "migrate", "replay", "run", "traces list", "traces show",
                "traces search", "traces request", "traces response", "traces logs", "traces stats",
                "traces prune", "traces serve", "fleet"):
        assert cmd in firsts, cmd


def test_replay_json_masks_credentials(tmp_path: Path) -> None:
    """`replay --json` prints request headers; the API key from the case must come out masked.

    The environment has HTTP(S)_PROXY at a dead port and no NO_PROXY: replay's requests to its own
    loopback fake server must still bypass the proxy (else they fail and hand the key to the proxy).
    """
    env = _env(tmp_path, tmp_path, {"NO_PROXY": ""}, _closed_port())
    env.pop("no_proxy", None)
    proc = subprocess.run([sys.executable, "-m", "chapterx", "replay", "--json", str(FIX / "replay-case.json")],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    headers = out["provider_requests"][0]["headers"]
    assert SECRET not in proc.stdout + proc.stderr
    assert headers["x-api-key"] == "***"
    assert headers["content-type"] == "application/json"  # only credentials are masked


def test_migrate_failure_writes_nothing(tmp_path: Path) -> None:
    """A failing migrate leaves no half-written --out folder behind (never lost or partial data)."""
    _ems(tmp_path, broken=True)
    env = _env(tmp_path, tmp_path, {}, _closed_port())
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = subprocess.run([sys.executable, "-m", "chapterx", "migrate", str(tmp_path / "ems"), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 1
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before



def test_migrate_secrets_only_in_private_files(tmp_path: Path) -> None:
    """After a migration the fake key may live only in 0600 files (token files, shared.yaml), never in a
    world-readable bot file (e.g. as a 'kept for reference' comment of an unsupported setting)."""
    _ems(tmp_path)
    env = _env(tmp_path, tmp_path, {}, _closed_port())
    proc = subprocess.run([sys.executable, "-m", "chapterx", "migrate", str(tmp_path / "ems"), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    holders = [p for p in (tmp_path / "o").rglob("*") if p.is_file() and SECRET in p.read_text(encoding="utf-8")]
    assert holders, "the token files should still carry the token"
    for p in holders:
        assert p.stat().st_mode & 0o077 == 0, f"{p} holds the key but is readable by others"
