"""Issue 9 items 3, 6, 9 (migrate half) and 14: migrate never follows links out of an em folder,
never deletes a target it did not write, never races a folder into oblivion, leaves no hidden copy
of the tokens after a kill, and reports a full disk in one line."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import chapterx_compat.chapter2.migrate as mig
from chapterx.cli import main
from tests.conftest import FIXTURES_DIR, REPO_DIR

HARBOUR = FIXTURES_DIR / "chapter2" / "harbour" / "ems"


def _src(tmp_path: Path) -> Path:
    src = tmp_path / "ems"
    shutil.copytree(HARBOUR, src)
    return src


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().err


def test_links_leaving_the_em_folder_are_skipped_and_reported(tmp_path: Path) -> None:
    src = _src(tmp_path)
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY")
    os.chmod(secret, 0o600)
    chr_dir = src / "gull" / "gull.chr"
    os.symlink(secret, chr_dir / "key.txt")
    os.symlink(src / "tern" / "discord_token", chr_dir / "tern-token.txt")  # another em's token
    os.symlink(tmp_path, chr_dir / "outside-dir")
    os.symlink(src / "gull" / "name", chr_dir / "name-link.txt")  # stays inside the em: fine
    private = chr_dir / "private-notes.txt"
    private.write_text("notes")
    os.chmod(private, 0o600)
    out = tmp_path / "out"
    assert main(["migrate", str(src), "--out", str(out)]) == 0
    copied = out / "config" / "bots" / "gull" / "gull.chr"
    assert not (copied / "key.txt").exists() and not (copied / "tern-token.txt").exists()
    assert not (copied / "outside-dir").exists()
    assert (copied / "name-link.txt").read_text() == (src / "gull" / "name").read_text()
    assert (copied / "private-notes.txt").stat().st_mode & 0o777 == 0o600  # never widened
    report = json.loads((out / "migration-report.json").read_text())
    warnings = " ".join(next(e for e in report["ems"] if e["sysname"] == "gull")["warnings"])
    for name in ("key.txt", "tern-token.txt", "outside-dir"):
        assert name in warnings and "link" in warnings
    blob = "".join(p.read_text(errors="replace") for p in out.rglob("*") if p.is_file())
    assert "PRIVATE KEY" not in blob


def test_force_refuses_a_folder_migrate_did_not_write(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "opt-chapterx"
    (root / "venv" / "bin").mkdir(parents=True)
    (root / "logs").mkdir()
    (root / "tokens").mkdir()
    (root / "tokens" / "aria_token").write_text("tok")
    assert main(["migrate", str(HARBOUR), "--out", str(root), "--force"]) == 2
    err = _err(capsys)
    assert err.count("\n") == 1 and "did not write" in err
    assert (root / "tokens" / "aria_token").read_text() == "tok" and (root / "venv" / "bin").is_dir()


def test_force_moves_a_previous_output_aside(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    (out / "config" / "bots" / "gull.yaml").write_text("# hand edit\n")
    assert main(["migrate", str(HARBOUR), "--out", str(out), "--force"]) == 0
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("out.previous-")]
    assert len(aside) == 1 and (aside[0] / "config" / "bots" / "gull.yaml").read_text() == "# hand edit\n"
    assert "hand edit" not in (out / "config" / "bots" / "gull.yaml").read_text()
    assert str(aside[0].name) in capsys.readouterr().out


def test_a_folder_created_during_the_run_is_not_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    real = shutil.copyfile

    def racing(src: object, dst: object, **kw: object) -> object:
        if not out.exists():
            out.mkdir()
            (out / "someone-elses.txt").write_text("mine")
        return real(src, dst, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(mig.shutil, "copyfile", racing)
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 2
    assert "appeared" in _err(capsys)
    assert sorted(p.name for p in out.iterdir()) == ["someone-elses.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # no temporary folder left


def test_stale_temp_copy_of_a_killed_run_is_removed(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".out.migrate-{dead.pid}-x1y2"
    (stale / "config" / "bots").mkdir(parents=True)
    (stale / "config" / "bots" / "gull_discord_token").write_text("token copy")
    live = tmp_path / f".out.migrate-{os.getpid()}-live"  # a run still going: left alone
    live.mkdir()
    assert main(["migrate", str(HARBOUR), "--out", str(tmp_path / "out")]) == 0
    assert not stale.exists() and live.exists()


def test_kill_9_mid_write_then_rerun_leaves_no_token_copy(tmp_path: Path) -> None:
    code = ("import os, signal, chapterx_compat.chapter2.migrate as m\n"
            "real = os.fdopen\n"
            "def boom(fd, *a, **k):\n"
            "    f = real(fd, *a, **k)\n"
            "    if 'token' in os.readlink(f'/proc/self/fd/{fd}'): os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return f\n"
            "m.os.fdopen = boom\n"
            f"from chapterx.cli import main; main(['migrate', {str(HARBOUR)!r}, '--out', {str(tmp_path / 'out')!r}])\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".out.migrate-")]  # what the kill left
    assert main(["migrate", str(HARBOUR), "--out", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_full_disk_is_one_line(tmp_path: Path) -> None:
    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))  # writes past 64 bytes fail (EFBIG)

    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "chapterx", "migrate", str(HARBOUR), "--out", str(out)],
                          cwd=REPO_DIR, capture_output=True, text=True, timeout=120, preexec_fn=limit)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "cannot write" in proc.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []


_STEP_HOOK = """
import os, shutil, signal, sys
import chapterx_compat.chapter2.migrate as m
KILL_AT = int(sys.argv[1])
count = [0]
def step(real):
    def wrapped(*a, **k):
        count[0] += 1
        if count[0] == KILL_AT:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(*a, **k)
    return wrapped
m.os.fdopen = step(os.fdopen)
m.shutil.copyfile = step(shutil.copyfile)
m.os.rename = step(os.rename)
from chapterx.cli import main
rc = main(['migrate', sys.argv[2], '--out', sys.argv[3], '--force'])
print('STEPS', count[0])
sys.exit(rc)
"""


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_kill_9_at_every_step_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
    (out / "config" / "bots" / "gull.yaml").write_text("# previous run, edited\n")  # what must never be lost
    before = _snapshot(out)
    probe = subprocess.run([sys.executable, "-c", _STEP_HOOK, "0", str(HARBOUR), str(out)], cwd=REPO_DIR,
                           capture_output=True, text=True, timeout=120)
    steps = int(probe.stdout.split("STEPS")[1])
    # the probe itself replaced `out` (moving the edited tree aside); start each kill from the edited tree
    for kill_at in sorted({1, 2, steps // 2, steps - 1, steps}):
        for p in tmp_path.iterdir():
            shutil.rmtree(p)
        out.mkdir()
        for rel, data in before.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(data)
        proc = subprocess.run([sys.executable, "-c", _STEP_HOOK, str(kill_at), str(HARBOUR), str(out)],
                              cwd=REPO_DIR, capture_output=True, timeout=120)
        assert proc.returncode == -signal.SIGKILL, kill_at
        survivors = [out] + sorted(p for p in tmp_path.glob("out.previous-*"))
        assert any(d.is_dir() and _snapshot(d) == before for d in survivors), f"previous output lost at step {kill_at}"
        # the next run cleans up what the kill left and succeeds
        code = main(["migrate", str(HARBOUR), "--out", str(out), "--force"]) if out.exists() else \
            main(["migrate", str(HARBOUR), "--out", str(out)])
        assert code == 0, kill_at
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], f"temp left after step {kill_at}"


def _mount_tmpfs(path: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_real_enospc_keeps_the_previous_output(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    if not _mount_tmpfs(probe, "4m"):
        pytest.skip("needs root and tmpfs mounts")
    try:
        assert main(["migrate", str(HARBOUR), "--out", str(probe / "out")]) == 0
        used = shutil.disk_usage(probe).used
    finally:
        subprocess.run(["umount", str(probe)], check=True)
    small = tmp_path / "small"
    assert _mount_tmpfs(small, str(used + used // 2))  # room for one output, not two
    try:
        out = small / "out"
        assert main(["migrate", str(HARBOUR), "--out", str(out)]) == 0
        (out / "config" / "bots" / "gull.yaml").write_text("# edited\n")
        before = _snapshot(out)
        proc = subprocess.run([sys.executable, "-m", "chapterx", "migrate", str(HARBOUR), "--out", str(out), "--force"],
                              cwd=REPO_DIR, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr and "No space left" in proc.stderr
        assert _snapshot(out) == before  # nothing already written is lost
        assert sorted(p.name for p in small.iterdir()) == ["out"]  # the partial temp tree is gone
    finally:
        subprocess.run(["umount", str(small)], check=True)
