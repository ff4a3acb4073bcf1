"""`chapterx demo`: the README's first command starts, writes real traces of every example bot (a
ChapterX bot on ChapterX's runtime; a chapter2 em run in place and the migrated em on chapter2's runtime),
serves them with the fleet page, and stops cleanly on a terminal's Ctrl-C (SIGINT to the process group)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from chapterx.cli import main


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


@pytest.mark.timeout(240)
def test_demo_serves_traces_of_every_example_bot(tmp_path: Path) -> None:
    work = tmp_path / "demo"
    env = {**os.environ, "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    for key in ("AUTH_TOKEN", "LOGS_DIR", "LOGS_DIRS", "TRACE_INDEX_PATH", "ANTHROPIC_API_KEY"):
        env.pop(key, None)
    proc = subprocess.Popen([sys.executable, "-m", "chapterx", "demo", "--port", "0", "--dir", str(work)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            start_new_session=True)  # its own process group: Ctrl-C as a terminal sends it
    try:
        assert proc.stdout is not None
        out: list[str] = []
        url = None
        deadline = time.monotonic() + 150
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            out.append(line)
            m = re.match(r"trace viewer: (http://127\.0\.0\.1:\d+/)", line)
            url = m.group(1) if m else None
        assert url, "".join(out) + (proc.stderr.read() if proc.poll() is not None and proc.stderr else "")
        while not out[-1].startswith("Ctrl-C"):  # the rest of the summary
            out.append(proc.stdout.readline())
            assert out[-1], "".join(out)
        text = "".join(out)
        assert "FAILED" not in text, text
        assert (work / "migrated" / "MIGRATION_REPORT.md").is_file()
        status, body = _get(url + "api/traces")
        assert status == 200
        data = json.loads(body)
        traces = data["traces"] if isinstance(data, dict) else data
        assert {t["botName"] for t in traces} >= {"aria", "wren", "wren-migrated"}
        assert all(t.get("success", t.get("status") == "success") for t in traces)
        # both frameworks: the ChapterX bot on ChapterX's runtime, both ems on chapter2's (as `chapterx run`)
        frameworks = {t["botName"]: t["framework"] for t in traces}
        assert frameworks == {"aria": "chapterx", "wren": "chapter2", "wren-migrated": "chapter2"}
        assert {t["activationReason"] for t in traces if t["botName"] == "wren"} == {"name", "ping"}  # `m mu`
        _, body = _get(url + "api/traces?framework=chapter2")
        assert {t["botName"] for t in json.loads(body)["traces"]} == {"wren", "wren-migrated"}
        # the fleet API answers with every bot and its framework; the fleet page is served
        status, body = _get(url + "api/fleet/bots?range=24h")
        assert status == 200
        fleet = {b["bot"]: (b["framework"], b["activations"], b["failures"]) for b in json.loads(body)["bots"]}
        assert fleet == {"aria": ("chapterx", 1, 0), "wren": ("chapter2", 2, 0), "wren-migrated": ("chapter2", 1, 0)}
        status, body = _get(url + "api/fleet/failures?range=24h")
        assert status == 200 and json.loads(body)["failures"] == []
        status, page = _get(url + "fleet")
        assert status == 200 and b"<html" in page.lower()
        # the summary points at what to look at
        assert f"{url}?framework=chapter2  wren, wren-migrated" in text
        assert f"{url}?framework=chapterx  aria" in text
        assert f"{url}fleet " in text and "no failed activation in this run" in text
        status, page = _get(url)
        assert status == 200 and b"<html" in page.lower()
        os.killpg(proc.pid, signal.SIGINT)  # the demo and the viewer's index worker, as Ctrl-C in a terminal
        assert proc.wait(timeout=30) == 0
        assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_demo_no_serve_posts_replies_and_writes_traces(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert main(["demo", "--no-serve", "--dir", str(tmp_path / "d")]) == 0
    out = capsys.readouterr().out
    assert "aria (chapterx, chapterx rules): posted 1 message(s): 'The sourdough" in out
    # chapter2 rules: the name alone triggers wren; `m mu` replaced her first reply with the second
    assert "wren (chapter2 em (run in place), chapter2 rules): posted 1 message(s): 'Logged at dusk: fog over " \
           "the north rocks, lamp lit early" in out
    assert "wren-migrated (migrated em, chapter2 rules): posted 1 message(s): 'Fog again" in out
    assert "traces: 4 (chapter2: 3, chapterx: 1), 0 failed" in out
    traces = [json.loads(p.read_text()) for p in (tmp_path / "d" / "logs" / "traces").rglob("*.json")]
    assert sorted((t["botId"], t.get("framework", "chapterx")) for t in traces) == [
        ("aria", "chapterx"), ("wren", "chapter2"), ("wren", "chapter2"), ("wren-migrated", "chapter2")]
    mu = next(t for t in traces if t["botId"] == "wren" and t["activation"]["reason"] != "name")
    # `m mu`: the first reply deleted, a new one sent, the command deleted
    assert [a["type"] for a in mu["chapter2"]["actions"]] == ["delete", "send", "delete"]


def test_demo_refuses_a_non_empty_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--no-serve", "--dir", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


def test_summary_points_at_a_failed_activation(tmp_path: Path) -> None:
    """When an activation failed, the summary links its trace in the viewer (and counts it)."""
    from chapterx.commands.demo import DemoResult, read_index, summary

    traces = tmp_path / "logs" / "traces"
    traces.mkdir(parents=True)
    (traces / "index.jsonl").write_text(
        '{"traceId": "01aa", "botName": "aria", "framework": "chapterx", "success": true}\n'
        '{"traceId": "01bb", "botName": "wren", "framework": "chapter2", "success": false}\n'
        "not json\n", encoding="utf-8")
    result = DemoResult(tmp_path, tmp_path / "logs", None, kinds={"wren": "chapter2 em (run in place)"},
                        rules={"wren": "chapter2"}, posted={"wren": []}, traces=read_index(tmp_path / "logs"))
    text = summary(result, "http://127.0.0.1:9/")
    assert "traces: 2 (chapter2: 1, chapterx: 1), 1 failed" in text
    assert "http://127.0.0.1:9/trace/01bb  a failed activation (wren)" in text
    assert "no failed activation" not in text
