"""`tool-plugins.json` (46 cases) through the runtime with a real ToolSystem, MCP over stdio and the
timer scheduler; and through `chapterx replay`.

Each case must equal upstream's expected value, or, where we differ on purpose (docs/differences.md
"Tool loops" and "Tools"), the adjusted value from `tests.tools.vectors` — and then it must still
differ from upstream's raw value, so a case that matches upstream again fails until its adjustment
is dropped.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from chapterx.replays.tool_plugins import run_case
from tests.conftest import SHARED_DIR, shared_path
from tests.tools.vectors import ADJUSTMENTS, adjusted, mismatches

VECTORS = SHARED_DIR / "golden" / "chapterx" / "tool-plugins.json"

# Cases not reproduced yet, with the reason (listed in the report; strict: a pass fails the run).
NOT_YET: dict[str, str] = {}


def _cases() -> list[Any]:
    if not VECTORS.exists():
        return [pytest.param("missing", marks=pytest.mark.skip(reason="tool-plugins.json not present"))]
    out = []
    for case in json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]:
        marks = [pytest.mark.xfail(reason=NOT_YET[case["id"]], strict=True)] if case["id"] in NOT_YET else []
        out.append(pytest.param(case["id"], marks=marks, id=case["id"]))
    return out


def _case(case_id: str) -> dict[str, Any]:
    data = json.loads(shared_path("golden", "chapterx", "tool-plugins.json").read_text(encoding="utf-8"))
    case: dict[str, Any] = next(c for c in data["cases"] if c["id"] == case_id)
    return case


@pytest.mark.parametrize("case_id", _cases())
async def test_tool_plugin_case(case_id: str) -> None:
    case = _case(case_id)
    got = await run_case(case["input"])
    want, changed = adjusted(case)
    if changed:
        assert mismatches(got, case["expected"]), "matches upstream again: drop the adjustment and its doc bullet"
    problems = mismatches(got, want)
    assert not problems, "\n".join(problems)


def test_every_adjusted_case_exists() -> None:
    if not VECTORS.exists():
        pytest.skip("tool-plugins.json not present")
    ids = {c["id"] for c in json.loads(VECTORS.read_text(encoding="utf-8"))["cases"]}
    assert set(ADJUSTMENTS) <= ids and set(NOT_YET) <= ids
    assert len(ids) == 46


@pytest.mark.parametrize("case_id", ["tp-mcp-echo-add-visible-prefill"])
def test_replay_command_runs_tool_cases(case_id: str, tmp_path: Any) -> None:
    """`chapterx replay FILE --case-id ID --json` picks the tool-plugin shape and prints the observed
    value in the case's `expected` shape (the same run the vector test checks)."""
    if not VECTORS.exists():
        pytest.skip("tool-plugins.json not present")
    proc = subprocess.run([sys.executable, "-m", "chapterx", "replay", str(VECTORS), "--case-id", case_id, "--json"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    line = json.loads(proc.stdout.strip().splitlines()[-1])
    assert line["shape"] == "tool_plugins"
    observed = line["observed"]
    case = _case(case_id)
    want, _ = adjusted(case)
    observed["provider_bodies"] = [r["body"] for r in observed["provider_requests"]]
    assert not mismatches(observed, want)


def test_every_adjustment_is_documented() -> None:
    """Each adjusted case id is named under the Tools heading of docs/differences.md."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "differences.md").read_text(encoding="utf-8")
    tools = text.split('<a id="tools"></a>', 1)[1].split("<a id=", 1)[0]
    missing = [cid for cid in ADJUSTMENTS if f"`{cid}`" not in tools]
    assert not missing, f"adjusted but not documented under Tools: {missing}"
