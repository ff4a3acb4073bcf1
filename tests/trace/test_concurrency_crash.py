"""Several bot processes sharing one logs folder, and a process killed mid-activation."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import jsonschema

from chapterx.cli import main as cli_main
from chapterx.paths import SCHEMAS_DIR
from chapterx.trace.ids import TRACE_FILE_RE

REPO = Path(__file__).resolve().parents[2]
WORKERS, PER_WORKER = 8, 500


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "tests.trace.proc_worker", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_eight_processes_share_one_logs_folder(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    seen: set[str] = set()
    problems: list[str] = []
    done = threading.Event()
    polls = [0]
    offset = [0]
    lines_seen = [0]

    def poll() -> None:
        """Read every trace file as soon as it appears, and every complete index line."""
        while True:
            finished = done.is_set()
            for folder in (logs / "traces").glob("*"):
                if not folder.is_dir():
                    continue
                for entry in os.scandir(folder):
                    if entry.name in seen or not TRACE_FILE_RE.match(entry.name):
                        continue
                    try:
                        with open(entry.path, encoding="utf-8") as fh:
                            json.load(fh)
                        seen.add(entry.name)
                    except ValueError as exc:
                        problems.append(f"partial trace file {entry.name}: {exc}")
            idx = logs / "traces" / "index.jsonl"
            if idx.exists():
                with open(idx, "rb") as fh:
                    fh.seek(offset[0])
                    data = fh.read()
                complete = data[: data.rfind(b"\n") + 1]
                offset[0] += len(complete)
                for raw in complete.splitlines():
                    try:
                        json.loads(raw)
                        lines_seen[0] += 1
                    except ValueError:
                        problems.append(f"torn index line: {raw[:80]!r}")
            polls[0] += 1
            if finished:
                return
            time.sleep(0.02)

    reader = threading.Thread(target=poll)
    reader.start()
    procs = [_spawn("many", str(logs), str(w), str(PER_WORKER)) for w in range(WORKERS)]
    try:
        for p in procs:
            _, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
    finally:
        done.set()
        reader.join()
    assert not problems, problems[:5]
    assert polls[0] > 3
    assert lines_seen[0] == WORKERS * PER_WORKER
    total = WORKERS * PER_WORKER
    files = [p for p in (logs / "traces").rglob("*.json") if TRACE_FILE_RE.match(p.name)]
    assert len(files) == total and len(seen) == total
    lines = (logs / "traces" / "index.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    entries = [json.loads(x) for x in lines[:-1]]
    assert len(entries) == total
    validator = jsonschema.Draft202012Validator(
        json.loads((SCHEMAS_DIR / "trace-index-line.schema.json").read_text()))
    for e in entries:
        validator.validate(e)
    assert len({e["traceId"] for e in entries}) == total
    assert {e["filename"] for e in entries} == {p.name for p in files}
    assert not list((logs / "traces").rglob(".inprogress/*.json"))
    assert not list((logs / "traces").rglob("*.tmp"))


def test_kill_9_mid_activation_shows_as_aborted(tmp_path: Path, capsys: Any) -> None:
    logs = tmp_path / "logs"
    proc = _spawn("hang", str(logs))
    assert proc.stdout is not None
    line = proc.stdout.readline().split()
    assert line and line[0] == "READY", proc.stderr.read() if proc.stderr else ""
    trace_id = line[1]
    # while it runs, readers see it as running
    assert cli_main(["traces", "list", "--logs-dir", str(logs), "--json"]) == 0
    running = json.loads(capsys.readouterr().out)["traces"]
    assert [(t["traceId"], t["status"]) for t in running] == [(trace_id, "running")]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert cli_main(["traces", "list", "--logs-dir", str(logs), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["traces"]
    assert len(listed) == 1
    t = listed[0]
    assert t["traceId"] == trace_id and t["status"] == "aborted" and t["success"] is False
    assert t["botName"] == "Crashy Bot" and t["channelName"] == "crash-test"
    assert cli_main(["traces", "list", "--logs-dir", str(logs), "--status", "aborted"]) == 0
    assert "aborted" in capsys.readouterr().out
    assert cli_main(["traces", "show", trace_id, "--logs-dir", str(logs)]) == 0
    detail = json.loads(capsys.readouterr().out)
    assert detail["status"] == "aborted" and detail["outcome"]["error"]["phase"] == "tool_execution"
    assert len(detail["llmCalls"]) == 1
    assert cli_main(["traces", "search", "777", "--logs-dir", str(logs), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["results"][0]["status"] == "aborted"
