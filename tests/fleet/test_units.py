"""`chapterx fleet units`: the generated units are the documented layout, hardened, and verify."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from chapterx.cli import main
from chapterx.fleet.units import (
    BOT_UNIT,
    EMS_UNIT,
    PRUNE_SERVICE,
    PRUNE_TIMER,
    VIEWER_UNIT,
    UnitOptions,
    render_units,
    token_path,
)


def _ini(text: str) -> dict[str, list[str]]:
    """key -> values (a key may repeat, e.g. Environment=)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            k, v = line.split("=", 1)
            out.setdefault(k, []).append(v)
    return out


def test_bot_units_are_notify_watchdog_and_hardened() -> None:
    units = render_units(UnitOptions(prefix="/srv/cx", user="bots", watchdog_sec=90))
    assert set(units) == {BOT_UNIT, EMS_UNIT, VIEWER_UNIT, PRUNE_SERVICE, PRUNE_TIMER}
    for name in (BOT_UNIT, EMS_UNIT):
        kv = _ini(units[name])
        assert kv["Type"] == ["notify"] and kv["WatchdogSec"] == ["90"] and kv["NotifyAccess"] == ["main"]
        assert kv["User"] == ["bots"] and kv["Restart"] == ["always"]
        for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("PrivateTmp", "yes"),
                           ("ProtectHome", "read-only")):
            assert kv[key] == [value], (name, key)
        assert kv["ReadWritePaths"] == ["/srv/cx/logs /srv/cx/cache /srv/cx/tools"]
        env = dict(e.split("=", 1) for e in kv["Environment"])
        assert env["LOGS_DIR"] == "/srv/cx/logs" and env["CACHE_PATH"] == "/srv/cx/cache/%i"
        assert env["BOT_NAME"] == "%i"  # the trace bot id is the unit instance: fleet status joins on it
    bot = _ini(units[BOT_UNIT])
    env = dict(e.split("=", 1) for e in bot["Environment"])
    assert bot["ExecStart"] == ["/srv/cx/.venv/bin/chapterx run --config /srv/cx/config/bots/%i.yaml"]
    # the token path the unit reads is the one `migrate --into` writes
    assert env["DISCORD_TOKEN_FILE"] == token_path("/srv/cx/config", "%i") == "/srv/cx/tokens/%i_token"
    assert _ini(units[EMS_UNIT])["ExecStart"] == ["/srv/cx/.venv/bin/chapterx run --ems /opt/chapter2/ems --bot %i"]
    viewer = _ini(units[VIEWER_UNIT])
    assert "HOST=127.0.0.1" in viewer["Environment"] and viewer["ReadWritePaths"] == ["/srv/cx/cache -/srv/cx/logs/otlp"]
    prune = _ini(units[PRUNE_SERVICE])
    assert prune["Type"] == ["oneshot"] and prune["ExecStart"][0].endswith("traces prune --older-than 14d")
    assert _ini(units[PRUNE_TIMER])["Persistent"] == ["true"]


@pytest.mark.parametrize(("flag", "value"), [("--prefix", "relative/x"), ("--prefix", "/opt/a b"),
                                             ("--prefix", "/opt/%i"), ("--user", "Bad User"),
                                             ("--ems", "/x/../y"), ("--prune-older-than", "forever")])
def test_unsafe_values_are_refused_with_one_line(tmp_path: Path, flag: str, value: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fleet", "units", "--out", str(tmp_path / "u"), flag, value]) == 2
    err = capsys.readouterr().err
    assert err.startswith("chapterx: error: " + flag) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "u").exists()


def test_cli_writes_and_does_not_clobber(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "units"
    assert main(["fleet", "units", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(render_units(UnitOptions()))
    assert main(["fleet", "units", "--out", str(out)]) == 0  # same content: fine
    (out / BOT_UNIT).write_text("# edited by hand\n")
    assert main(["fleet", "units", "--out", str(out), "--prefix", "/srv/cx"]) == 2
    assert (out / BOT_UNIT).read_text() == "# edited by hand\n"
    assert main(["fleet", "units", "--out", str(out), "--prefix", "/srv/cx", "--force"]) == 0
    assert "/srv/cx/config/bots/%i.yaml" in (out / BOT_UNIT).read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_verify_is_clean(tmp_path: Path) -> None:
    prefix = tmp_path / "opt" / "chapterx"
    ems = tmp_path / "opt" / "chapter2" / "ems"
    for d in ("config/bots", "logs", "cache", "tools", ".venv/bin"):
        (prefix / d).mkdir(parents=True)
    ems.mkdir(parents=True)
    exe = prefix / ".venv" / "bin" / "chapterx"  # verify checks that ExecStart exists and is executable
    exe.write_text("#!/bin/sh\nexit 0\n")
    exe.chmod(0o755)
    out = tmp_path / "units"
    assert main(["fleet", "units", "--out", str(out), "--prefix", str(prefix), "--ems", str(ems),
                 "--user", "root"]) == 0
    # templates are verified through an instance, as systemd would load them
    shutil.copy(out / BOT_UNIT, out / "chapterx@aria.service")
    shutil.copy(out / EMS_UNIT, out / "chapterx-ems@wren.service")
    names = ["chapterx@aria.service", "chapterx-ems@wren.service", VIEWER_UNIT, PRUNE_SERVICE, PRUNE_TIMER]
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *[f"./{n}" for n in names]], cwd=out,
                         capture_output=True, text=True, timeout=120)
    noise = [ln for ln in res.stderr.splitlines() if "container" not in ln.lower()]
    assert res.returncode == 0 and noise == [], res.stderr
    # and the check is able to fail: a unit with a typo is reported
    (out / "broken.service").write_text((out / VIEWER_UNIT).read_text().replace("PrivateTmp=", "PrivatTmp="))
    bad = subprocess.run(["systemd-analyze", "verify", "--man=no", "./broken.service"], cwd=out,
                         capture_output=True, text=True, timeout=120)
    assert "PrivatTmp" in bad.stderr


def test_docs_excerpt_matches_the_generated_unit() -> None:
    """docs/running.md shows an excerpt of chapterx@.service: every line of it is in the real unit."""
    from tests.conftest import REPO_DIR

    text = (REPO_DIR / "docs" / "running.md").read_text()
    excerpt = text.split("# chapterx@.service (excerpt)\n", 1)[1].split("```", 1)[0]
    unit = render_units(UnitOptions())[BOT_UNIT].splitlines()
    lines = [ln for ln in excerpt.splitlines() if ln.strip()]
    assert len(lines) >= 6 and all(ln in unit for ln in lines), [ln for ln in lines if ln not in unit]
