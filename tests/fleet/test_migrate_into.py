"""`chapterx migrate EMS --into CONFIG_ROOT` on an existing deployment: vendors merged by name,
nothing overwritten, refusals without --force-bot, tokens where the generated unit reads them, and
the migrated bot starts from the unit's own paths (real bot process, fake Discord, fake LLM,
sd_notify READY over a real socket)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import stat
import sys
from pathlib import Path

import pytest

from chapterx.cli import main
from chapterx.config.validate import validate_paths
from chapterx.fleet.units import BOT_UNIT, UnitOptions, render_units
from chapterx.llm.fake import FakeLLMServer
from tests.conftest import FIXTURES_DIR, REPO_DIR
from tests.fakes.discord_server import FakeDiscord
from tests.procs import start_argv, stop

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"
EXISTING_SHARED = """\
# Production shared config: hand-written, comments must survive.
vendors:
  anthropic:
    config:
      anthropic_api_key: sk-ant-existing-KEY-0001   # the deployment's own key
    provides:
      - "claude-*"

# everything below is someone else's business
max_tokens: 500
"""


def _deployment(tmp_path: Path) -> Path:
    """/opt/chapterx as an operator has it: shared.yaml (0600), one bot, tokens/."""
    prefix = tmp_path / "opt" / "chapterx"
    root = prefix / "config"
    (root / "bots").mkdir(parents=True)
    (root / "shared.yaml").write_text(EXISTING_SHARED)
    (root / "shared.yaml").chmod(0o600)
    (root / "bots" / "aria.yaml").write_text("name: Aria\ncontinuation_model: claude-sonnet-4-5-20250929\n")
    (prefix / "tokens").mkdir(mode=0o700)
    (prefix / "tokens" / "aria_token").write_text("aria-token\n")
    return root


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_merge_adds_vendors_keeps_everything_and_writes_tokens_for_the_unit(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = _deployment(tmp_path)
    prefix = root.parent
    before = _snapshot(prefix)
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    # every original line of shared.yaml is still there, in order; only vendor entries were added
    shared = (root / "shared.yaml").read_text()
    assert shared.startswith(EXISTING_SHARED.split("\n# everything below")[0])
    assert shared.endswith("# everything below is someone else's business\nmax_tokens: 500\n")
    assert stat.S_IMODE((root / "shared.yaml").stat().st_mode) == 0o600
    vendors = {v["name"]: v["action"] for v in report["vendors"]}
    assert vendors == {"openaicompletion-lan": "added", "anthropic": "conflict"}
    assert "sk-ant-existing-KEY-0001" in shared and "sk-ant-TEST-not-a-key" not in shared  # never overwritten
    assert "openaicompletion-lan:" in shared
    # existing bot and token untouched
    for rel in ("config/bots/aria.yaml", "tokens/aria_token"):
        assert (prefix / rel).read_bytes() == before[rel]
    # migrated bots, tokens where chapterx@<em>.service reads them (0600)
    env = _unit_env(prefix, "gull")
    for em in ("gull", "skua", "tern"):
        assert (root / "bots" / f"{em}.yaml").is_file()
        tok = prefix / "tokens" / f"{em}_token"
        assert tok.read_text() == (HARBOUR / em / "discord_token").read_text().strip() + "\n"
        assert stat.S_IMODE(tok.stat().st_mode) == 0o600
    assert Path(env["DISCORD_TOKEN_FILE"]) == prefix / "tokens" / "gull_token"
    assert (root / "bots" / "gull" / "gull.chr" / "sayings.txt").is_file()
    # the report lists exactly the files that changed, and holds no secret
    changed = {c["path"] for c in report["changes"]}
    after = _snapshot(prefix)
    really = {str(prefix / k) for k in after if before.get(k) != after[k]}
    assert changed == really
    text = json.dumps(report)
    assert "not-a-real-token" not in text and "sk-" not in text
    # the merged tree validates (the conflict leaves tern on the deployment's anthropic vendor)
    errors = [p for r in validate_paths([root]) for p in r.errors]
    assert errors == []


def test_existing_bot_is_refused_and_nothing_is_written(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    root = _deployment(tmp_path)
    (root / "bots" / "tern.yaml").write_text("name: Tern (hand-tuned)\ncontinuation_model: claude-x\n")
    before = _snapshot(root.parent)
    assert main(["migrate", str(HARBOUR), "--into", str(root)]) == 1
    cap = capsys.readouterr()
    assert "NOTHING WAS WRITTEN" in cap.out and "--force-bot tern" in cap.err
    assert len(cap.err.strip().splitlines()) == 1
    assert _snapshot(root.parent) == before
    # --dry-run with --force-bot shows the replacement, still writes nothing
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--force-bot", "tern", "--dry-run"]) == 0
    assert "replaced" in capsys.readouterr().out and _snapshot(root.parent) == before
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--force-bot", "tern", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {b["em"]: b["action"] for b in rep["bots"]} == {"gull": "created", "skua": "created", "tern": "replaced"}
    assert "hand-tuned" not in (root / "bots" / "tern.yaml").read_text()
    # a second run refuses every bot: reruns never clobber silently
    assert main(["migrate", str(HARBOUR), "--into", str(root)]) == 1
    assert "--force-bot gull" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--force"], "--force-bot"),
    (["--out", "x"], "either --out"),
    (["--force-bot", "nobody"], "nobody"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args: list[str], message: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    root = _deployment(tmp_path)
    before = _snapshot(root.parent)
    assert main(["migrate", str(HARBOUR), "--into", str(root), *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert _snapshot(root.parent) == before


def test_shared_yaml_without_vendors_or_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "config"
    (root / "bots").mkdir(parents=True)
    (root / "shared.yaml").write_text("max_tokens: 100")  # no newline at the end, no vendors
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--bots", "tern"]) == 0
    text = (root / "shared.yaml").read_text()
    assert text.startswith("max_tokens: 100\nvendors:\n  ")
    capsys.readouterr()
    other = tmp_path / "other" / "config"
    (other / "bots").mkdir(parents=True)
    assert main(["migrate", str(HARBOUR), "--into", str(other), "--bots", "tern"]) == 0
    assert stat.S_IMODE((other / "shared.yaml").stat().st_mode) == 0o600
    assert not [p for r in validate_paths([other]) for p in r.errors]


def test_flow_style_vendors_is_refused_not_mangled(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "config"
    (root / "bots").mkdir(parents=True)
    (root / "shared.yaml").write_text("vendors: {anthropic: {config: {anthropic_api_key: k}}}\n")
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--bots", "gull"]) == 1
    assert "by hand" in capsys.readouterr().err
    assert (root / "shared.yaml").read_text() == "vendors: {anthropic: {config: {anthropic_api_key: k}}}\n"
    assert not (root / "bots" / "gull.yaml").exists()


# ------------------------------------------------------------------ the bot starts from the unit's paths


def _unit_env(prefix: Path, bot: str) -> dict[str, str]:
    text = render_units(UnitOptions(prefix=str(prefix)))[BOT_UNIT].replace("%i", bot)
    return dict(line.split("=", 2)[1:] for line in text.splitlines() if line.startswith("Environment="))


def _unit_exec(prefix: Path, bot: str) -> list[str]:
    text = render_units(UnitOptions(prefix=str(prefix)))[BOT_UNIT].replace("%i", bot)
    line = next(ln for ln in text.splitlines() if ln.startswith("ExecStart="))
    argv = line.split("=", 1)[1].split()
    assert argv[0] == str(prefix / ".venv" / "bin" / "chapterx")
    return [sys.executable, "-m", "chapterx", *argv[1:]]


def test_config_show_with_the_unit_environment(tmp_path: Path) -> None:
    import subprocess

    root = _deployment(tmp_path)
    assert main(["migrate", str(HARBOUR), "--into", str(root)]) == 0
    prefix = root.parent
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(_unit_env(prefix, "tern"), PYTHONPATH=str(REPO_DIR))
    argv = _unit_exec(prefix, "tern")
    show = [*argv[:3], "config", "show", *argv[4:]]  # same --config as the unit's `run`
    res = subprocess.run(show, env=env, cwd=prefix, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "claude-3-5-sonnet-20240620" in res.stdout
    assert "sk-ant-existing-KEY-0001" not in res.stdout  # masked


async def test_migrated_bot_runs_from_the_unit_and_notifies_systemd(tmp_path: Path) -> None:
    root = _deployment(tmp_path)
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--bots", "tern"]) == 0
    prefix = root.parent
    for d in ("logs", "cache", "tools"):
        (prefix / d).mkdir()
    token = (prefix / "tokens" / "tern_token").read_text().strip()
    bot_user = {"id": "730000000000000077", "username": "tern-bot"}
    alice = {"id": "750000000000000001", "username": "alice"}
    channel = "710000000000000001"
    notify_path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify_path)
    sock.setblocking(False)
    got: list[str] = []
    loop = asyncio.get_running_loop()
    loop.add_reader(sock.fileno(), lambda: got.append(sock.recv(4096).decode()))
    try:
        # @everyone may send: migrated bots keep chapter2's rules, which check the send permission
        perms = str(1024 | 2048 | 65536 | 64)
        async with FakeDiscord(token=token, bot=bot_user, users=[alice], everyone_permissions=perms) as discord, \
                FakeLLMServer([{"text": "Harbour radio: all clear."}]) as llm:
            env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
            env.update(_unit_env(prefix, "tern"))
            env.update(NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000", PYTHONPATH=str(REPO_DIR),
                       CHAPTERX_DISCORD_API=discord.api_base, CHAPTERX_LLM_BASE_URL=llm.base_url)
            argv = _unit_exec(prefix, "tern")
            proc = await start_argv(argv, env, prefix)
            try:
                for _ in range(600):
                    if any(m.startswith("READY=1") for m in got) or proc.returncode is not None:
                        break
                    await asyncio.sleep(0.1)
                assert any(m.startswith("READY=1") for m in got), "no READY=1 from the bot"
                await discord.user_message(channel, alice["id"], f"<@{bot_user['id']}> radio check")
                sends = await discord.wait_for("send", timeout=60)
                await asyncio.sleep(0.5)
            finally:
                code, err = await stop(proc)
            await asyncio.sleep(0.1)
    finally:
        loop.remove_reader(sock.fileno())
        sock.close()
    assert code == 0, err
    assert "all clear" in sends[0]["content"]
    assert got[0].startswith("READY=1") and "WATCHDOG=1" in got and got[-1] == "STOPPING=1"
    # the trace sits where the viewer and `fleet status` look, under the unit's bot name
    assert list((prefix / "logs" / "traces" / "tern").glob("*.json"))
    assert token not in err
    shutil.rmtree(prefix / "cache", ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give files to another user")
def test_run_with_sudo_keeps_the_deployment_owner(tmp_path: Path) -> None:
    """An operator running migrate as root must not leave root-owned 0600 tokens the bot cannot read."""
    root = _deployment(tmp_path)
    prefix = root.parent
    for p in [prefix, *prefix.rglob("*")]:
        os.chown(p, 4242, 4343)
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--bots", "gull"]) == 0
    for p in [root / "shared.yaml", root / "bots" / "gull.yaml", prefix / "tokens" / "gull_token",
              root / "bots" / "gull", root / "bots" / "gull" / "gull.chr" / "sayings.txt",
              *(prefix / "migrations").rglob("*")]:
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (4242, 4343), p


def test_runs_in_the_same_second_keep_separate_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The report folder is named to the second: a second run in that second gets its own folder, so
    neither report is replaced or claimed by the other run."""
    import chapterx_compat.chapter2.migrate_into as into

    monkeypatch.setattr(into.time, "strftime", lambda *_a, **_k: "20261206-120000")
    root = _deployment(tmp_path)
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--bots", "gull", "--json"]) == 0
    first = json.loads(capsys.readouterr().out)["into_report"]
    assert main(["migrate", str(HARBOUR), "--into", str(root), "--bots", "skua", "--json"]) == 0
    second = json.loads(capsys.readouterr().out)["into_report"]
    assert first != second
    assert json.loads(Path(first).read_text())["bots"][0]["em"] == "gull"
    assert json.loads(Path(second).read_text())["bots"][0]["em"] == "skua"
