"""The bundled examples do what README.md says they do."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO_DIR


def test_replay_example_answers_the_mention_once() -> None:
    case = REPO_DIR / "examples" / "replay" / "aria-mention.json"
    out = subprocess.run([sys.executable, "-m", "chapterx", "replay", str(case), "--json"],
                         capture_output=True, text=True, timeout=120, cwd=REPO_DIR)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    [request] = result["provider_requests"]
    assert request["path"] == "api.anthropic.com/v1/messages"
    assert "what would you order?" in json.dumps(request["body"])
    # The example key is a secret like any other: never echoed into output.
    assert "sk-ant-example" not in out.stdout + out.stderr
    sends = [a for a in result["discord_actions"] if a["type"] == "send"]
    assert [s["reply_to"] for s in sends] == ["1410000000000000003"]
    assert sends[0]["content"].startswith("The sourdough, obviously")
