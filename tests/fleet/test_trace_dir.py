"""TRACE_DIR trap: traces outside LOGS_DIR/traces were never seen by any reader. Now a bot refuses
such a TRACE_DIR with one line (before touching anything), and accepts it when it names the folder
the readers use."""

from __future__ import annotations

from pathlib import Path

import pytest

from chapterx.cli import main
from chapterx.errors import UserError
from chapterx.trace.paths import trace_dir_from_env
from chapterx.trace.writer import TraceWriter
from tests.conftest import FIXTURES_DIR

BOT = FIXTURES_DIR / "discord" / "tree" / "config" / "bots" / "aria.yaml"


def _env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **kw: str) -> None:
    for k in ("BOT_CONFIG", "BOT_NAME", "EMS_PATH", "CONFIG_PATH", "TRACE_DIR", "LOGS_DIR"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DISCORD_TOKEN_FILE", str(tmp_path / "no-token"))
    for k, v in kw.items():
        monkeypatch.setenv(k, v)


def test_bot_refuses_a_trace_dir_no_reader_sees(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    _env(monkeypatch, tmp_path, LOGS_DIR=str(tmp_path / "logs"), TRACE_DIR=str(tmp_path / "elsewhere"))
    assert main(["run", "--config", str(BOT)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"chapterx: error: TRACE_DIR={tmp_path / 'elsewhere'} is not supported")
    assert f"LOGS_DIR={tmp_path}" in err[0]  # says what to set instead
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "logs").exists()


def test_trace_dir_naming_the_read_folder_is_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    # as a TypeScript ChapterX env file would have it: relative, spelled differently, same folder
    _env(monkeypatch, tmp_path, LOGS_DIR=str(tmp_path / "logs"), TRACE_DIR="./logs/../logs/traces")
    assert main(["run", "--config", str(BOT)]) == 2  # got past the check, stopped at the missing token
    assert "Discord token file not found" in capsys.readouterr().err


def test_writer_and_env_helper_use_logs_dir_traces(tmp_path: Path) -> None:
    env = {"LOGS_DIR": str(tmp_path / "logs")}
    assert trace_dir_from_env(env) == tmp_path / "logs" / "traces"
    w = TraceWriter(env=env, background=False)
    assert w.index_file == tmp_path / "logs" / "traces" / "index.jsonl"
    w.close()
    with pytest.raises(UserError, match="TRACE_DIR"):
        TraceWriter(env={**env, "TRACE_DIR": str(tmp_path / "t")}, background=False)
