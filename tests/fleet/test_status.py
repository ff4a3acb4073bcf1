"""`chapterx fleet status` on a test machine layout: ChapterX bots and chapter2 ems, a broken
config, a missing token, real processes found in /proc, traces of both frameworks in the index."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chapterx.cli import main
from chapterx.fleet.status import BotStatus, StatusOptions, collect, health, parse_systemctl_show
from tests.conftest import FIXTURES_DIR

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"
GOOD = "name: {}\ncontinuation_model: claude-sonnet-4-5-20250929\n"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _line(bot: str, ts: float, ok: bool, n: int) -> str:
    return json.dumps({"traceId": f"{bot}-{n:04d}", "timestamp": _iso(ts), "channelId": "3000000000000000001",
                       "triggeringMessageId": f"31000000000000{n:05d}", "botName": bot, "success": ok,
                       "durationMs": 1200, "llmCallCount": 1, "toolExecutionCount": 0, "totalTokens": 100,
                       "cost": 0.01, "filename": f"x-{bot}-{n}.json"})


def _chapter2_span(service: str, ts: float, ok: bool) -> str:
    start = int(ts * 1e9)
    span = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "DiscordInterface.handle_exceptions",
            "startTimeUnixNano": str(start), "endTimeUnixNano": str(start + 2_000_000_000), "kind": 1,
            "attributes": [{"key": "channel.id", "value": {"intValue": "3000000000000000009"}},
                           {"key": "message.id", "value": {"intValue": "3100000000000000009"}}],
            "status": {"code": 1 if ok else 2}}
    doc = {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name",
                                                            "value": {"stringValue": service}}]},
                              "scopeSpans": [{"scope": {"name": "chapter2"}, "spans": [span]}]}]}
    return json.dumps(doc)


@pytest.fixture
def machine(tmp_path: Path) -> Iterator[dict[str, Path]]:
    now = time.time()
    prefix = tmp_path / "opt" / "chapterx"
    root = prefix / "config"
    (root / "bots").mkdir(parents=True)
    (root / "shared.yaml").write_text("vendors:\n  anthropic:\n    config:\n      anthropic_api_key: sk-ant-x\n")
    tokens = prefix / "tokens"
    tokens.mkdir()
    for bot in ("aria", "robin", "lark", "owl", "wren"):
        (tokens / f"{bot}_token").write_text(f"{bot}-token\n")
        (tokens / f"{bot}_token").chmod(0o600)
    (tokens / "owl_token").chmod(0o644)  # noted, not fatal
    for bot in ("aria", "robin", "lark", "owl", "kite"):
        (root / "bots" / f"{bot}.yaml").write_text(GOOD.format(bot))
    (root / "bots" / "aria-700000000000000001.yaml").write_text("max_tokens: 100\n")  # a guild layer, not a bot
    (root / "bots" / "wren.yaml").write_text("name: wren\ncontinuation_model: 5\nmax_tokens: lots\n")  # broken
    logs = prefix / "logs"
    (logs / "traces").mkdir(parents=True)
    lines = [_line("aria", now - 3600, True, 1),
             *[_line("robin", now - 600 * i, i == 1, i) for i in range(1, 5)],
             _line("owl", now - 3 * 86400, True, 9),
             _line("skua", now - 7200, True, 10)]  # a chapter2 em run in place by chapterx
    (logs / "traces" / "index.jsonl").write_text("\n".join(lines) + "\n")
    # chapter2 checkout with its ems/ folder and an OTLP file exporter folder
    checkout = tmp_path / "chapter2"
    shutil.copytree(HARBOUR, checkout / "ems")
    (checkout / "chapter2").mkdir()
    (checkout / "chapter2" / "main.py").write_text("import time\ntime.sleep(120)\n")
    (checkout / "ems" / "logs").mkdir()
    (checkout / "ems" / "logs" / "spans.jsonl").write_text(_chapter2_span("prod-gull", now - 1800, True) + "\n")
    # live processes, as `ps` would show them
    fake_cx = f"exec -a {prefix}/.venv/bin/chapterx {sys.executable} -c 'import time; time.sleep(120)'"
    procs = [
        subprocess.Popen(["bash", "-c", f"{fake_cx} run --config config/bots/{bot}.yaml"], cwd=prefix)
        for bot in ("aria", "robin", "owl")
    ]
    procs.append(subprocess.Popen([sys.executable, "-u", "./chapter2/main.py", "gull"], cwd=checkout))
    procs.append(subprocess.Popen(["bash", "-c", f"{fake_cx} run --ems ../../chapter2/ems --bot skua"], cwd=prefix))
    time.sleep(0.3)
    try:
        yield {"prefix": prefix, "root": root, "logs": logs, "ems": checkout / "ems", "index": tmp_path / "ix.sqlite"}
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_status_table_json_and_exit_code(machine: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    args = ["fleet", "status", "--config-root", str(machine["root"]), "--ems", str(machine["ems"]),
            "--logs-dir", str(machine["logs"]), "--index", str(machine["index"]), "--json"]
    assert main(args) == 1  # some bots are unhealthy
    out = json.loads(capsys.readouterr().out)
    bots = {(b["framework"], b["bot"]): b for b in out["bots"]}
    words = {k: b["health"] for k, b in bots.items()}
    assert words == {
        ("chapterx", "aria"): "ok",
        ("chapterx", "kite"): "misconfigured",  # no token
        ("chapterx", "lark"): "stopped",  # token and config fine, no process
        ("chapterx", "owl"): "silent",  # running, last activation 3 days ago
        ("chapterx", "robin"): "failing",  # 3 of 4 activations failed
        ("chapterx", "wren"): "misconfigured",  # config errors
        ("chapter2", "gull"): "ok",  # run by chapter2 itself, spans in ems/logs
        ("chapter2", "skua"): "ok",  # run in place by chapterx: its ChapterX traces count
        ("chapter2", "tern"): "stopped",
    }
    assert out["ok"] is False
    aria, wren, kite = bots[("chapterx", "aria")], bots[("chapterx", "wren")], bots[("chapterx", "kite")]
    assert aria["process_alive"] is True and aria["pids"] and aria["activations_24h"] == 1
    assert aria["token_mode"] == "0600" and aria["token_file"].endswith("tokens/aria_token")
    assert aria["unit_state"] is None  # no systemd here: never required
    assert wren["config_errors"] == 2 and "chapterx validate" in wren["reasons"][0]
    assert kite["token_present"] is False and "no Discord token" in kite["reasons"][0]
    robin = bots[("chapterx", "robin")]
    assert (robin["activations_24h"], robin["failures_24h"]) == (4, 3) and robin["cost_24h_usd"] == pytest.approx(0.04)
    owl = bots[("chapterx", "owl")]
    assert owl["activations_24h"] == 0 and owl["last_activation"] is not None
    assert any("chmod 600" in r for r in owl["reasons"])
    gull = bots[("chapter2", "gull")]
    assert gull["activations_24h"] == 1 and gull["process_alive"] and gull["config_warnings"] >= 1
    # its spans carry no cost: unknown (null), not $0; owl did nothing in 24 h: it spent $0
    assert gull["cost_24h_usd"] is None and owl["cost_24h_usd"] == 0.0
    skua = bots[("chapter2", "skua")]
    assert skua["activations_24h"] == 1 and skua["process_alive"] and skua["token_file"].endswith("skua/discord_token")
    # the table on a terminal-less stdout still names every bot and its word
    assert main(args[:-1]) == 1
    table = capsys.readouterr().out
    for (_fw, bot), word in words.items():
        assert bot in table and word in table
    rows = {line.split()[1]: line for line in table.splitlines() if line.startswith("│ ") and len(line.split()) > 2}
    assert "unknown" in rows["gull"] and "$0.00" not in rows["gull"]
    assert "$0.04" in rows["robin"] and "$0.00" in rows["owl"]


def test_all_ok_exits_zero(machine: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    root = machine["root"]
    for bot in ("kite", "lark", "owl", "robin", "wren"):
        (root / "bots" / f"{bot}.yaml").unlink()
    assert main(["fleet", "status", "--config-root", str(root), "--logs-dir", str(machine["logs"]),
                 "--index", str(machine["index"])]) == 0
    assert "aria" in capsys.readouterr().out


def test_systemd_unit_state_is_read_with_systemctl_show(machine: dict[str, Path], tmp_path: Path) -> None:
    """A systemctl on PATH answering `show` like systemd 252 does (this test machine has no systemd)."""
    fake = tmp_path / "bin" / "systemctl"
    fake.parent.mkdir()
    fake.write_text("""#!/bin/sh
seen=0; first=1
for a in "$@"; do
  if [ "$seen" = 1 ]; then
    [ "$first" = 1 ] || echo
    first=0
    case "$a" in
      chapterx@lark.service) printf 'Id=%s\\nLoadState=loaded\\nActiveState=failed\\nSubState=failed\\nMainPID=0\\n' "$a";;
      chapterx@aria.service) printf 'Id=%s\\nLoadState=loaded\\nActiveState=active\\nSubState=running\\nMainPID=1\\n' "$a";;
      *) printf 'Id=%s\\nLoadState=not-found\\nActiveState=inactive\\nSubState=dead\\nMainPID=0\\n' "$a";;
    esac
  fi
  [ "$a" = "--" ] && seen=1
done
""")
    fake.chmod(0o755)
    bots = {b.bot: b for b in collect(StatusOptions(
        config_roots=(machine["root"],), logs_dirs=(machine["logs"],), index_path=machine["index"],
        systemctl=str(fake)))}
    assert bots["lark"].unit == "chapterx@lark.service" and bots["lark"].unit_state == "failed/failed"
    assert bots["lark"].health == "failing"
    assert bots["aria"].unit_state == "active/running" and bots["aria"].health == "ok"
    assert bots["kite"].unit is None  # not-found units are not reported as the bot's unit


def test_parse_systemctl_show_blocks() -> None:
    text = "Id=a.service\nLoadState=loaded\nActiveState=active\nSubState=running\nMainPID=42\n\n" \
           "Id=b.service\nLoadState=not-found\nActiveState=inactive\nSubState=dead\nMainPID=\n"
    a, b = parse_systemctl_show(text)
    assert (a.name, a.loaded, a.main_pid) == ("a.service", True, 42)
    assert (b.name, b.loaded, b.main_pid) == ("b.service", False, 0)


def _status(**kw: object) -> BotStatus:
    base: dict[str, object] = dict(bot="b", framework="chapterx", config="c", config_errors=0, config_warnings=0,
                                   token_file="t", token_present=True, token_mode="0600", unit=None, unit_state=None,
                                   process_alive=True, pids=[1], last_activation=1000.0, activations_24h=2,
                                   failures_24h=0, cost_24h_usd=0.0)
    base.update(kw)
    return BotStatus(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kw", "word"), [
    ({}, "ok"),
    ({"config_errors": 1, "process_alive": False}, "misconfigured"),
    ({"token_present": False}, "misconfigured"),
    ({"unit": "u", "unit_state": "inactive/dead", "process_alive": False}, "stopped"),
    ({"unit": "u", "unit_state": "activating/auto-restart"}, "failing"),
    ({"process_alive": False}, "stopped"),
    ({"failures_24h": 1, "activations_24h": 2}, "failing"),
    ({"failures_24h": 1, "activations_24h": 3}, "ok"),
    ({"last_activation": None, "activations_24h": 0}, "silent"),
])
def test_health_precedence(kw: dict[str, object], word: str) -> None:
    assert health(_status(**kw), now=2000.0, silent_after=86400)[0] == word


def test_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for k in ("CONFIG_PATH", "EMS_PATH"):
        monkeypatch.delenv(k, raising=False)
    assert main(["fleet", "status"]) == 2
    assert "--config-root" in capsys.readouterr().err
    assert main(["fleet", "status", "--config-root", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such folder" in err[0]


def test_corrupt_index_is_one_line(machine: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    machine["index"].write_text("not a database\n")
    assert main(["fleet", "status", "--config-root", str(machine["root"]), "--logs-dir", str(machine["logs"]),
                 "--index", str(machine["index"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot open the trace index" in err[0] and "delete it" in err[0]


def test_ems_must_be_a_chapter2_folder(machine: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "status", "--ems", str(machine["root"]), "--index", str(machine["index"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a chapter2 ems/ folder" in err[0]
