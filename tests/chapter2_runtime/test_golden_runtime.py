"""discord-runtime.json: every case through the chapter2 runtime on the in-memory Discord, compared
field by field with the vectors (quirks included)."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest

from chapterx.replays.chapter2_runtime import run_case
from tests.conftest import golden_cases, golden_ids, shared_path


def _cases() -> dict[str, dict[str, Any]]:
    return golden_cases("chapter2", "discord-runtime.json")


def _ids() -> list[str]:
    return golden_ids("chapter2", "discord-runtime.json")


def _exception(e: dict[str, str] | None) -> Any:
    """Pydantic's wording and docs URL depend on its version: compare type and the first two lines."""
    if e is None:
        return None
    if e["type"] == "ValidationError":
        return e["type"], re.sub(r"\s+For further information.*", "", e["message"], flags=re.S).splitlines()[:2]
    return e["type"], e["message"]


@pytest.mark.parametrize("case_id", _ids())
def test_runtime_case(case_id: str) -> None:
    case = _cases()[case_id]
    got = asyncio.run(run_case(case["input"]))
    exp = case["expected"]
    assert len(got["events"]) == len(exp["events"])
    for i, (g, e) in enumerate(zip(got["events"], exp["events"], strict=True)):
        g, e = dict(g), dict(e)
        assert _exception(g.pop("exception", None)) == _exception(e.pop("exception", None)), f"event {i}"
        assert g == e, f"event {i}"
    assert got["span_names"] == exp["span_names"]


def _compare(got: dict[str, Any], case: dict[str, Any]) -> None:
    exp = case["expected"]
    assert len(got["events"]) == len(exp["events"]), case["id"]
    for i, (g, e) in enumerate(zip(got["events"], exp["events"], strict=True)):
        g, e = dict(g), dict(e)
        assert _exception(g.pop("exception", None)) == _exception(e.pop("exception", None)), (case["id"], i)
        assert g == e, (case["id"], i)
    assert got["span_names"] == exp["span_names"], case["id"]


def test_every_case_through_chapterx_replay() -> None:
    """`chapterx replay discord-runtime.json` prints one observed object per case; all match."""
    import subprocess
    import sys

    cases = _cases()
    path = shared_path("golden", "chapter2", "discord-runtime.json")
    out = subprocess.run([sys.executable, "-m", "chapterx", "replay", str(path)], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [x["id"] for x in lines] == list(cases)
    for line in lines:
        assert line["shape"] == "chapter2-runtime"
        _compare(line["observed"], cases[line["id"]])
    one = subprocess.run([sys.executable, "-m", "chapterx", "replay", str(path), "--case-id", "cmd-mu"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert [json.loads(x)["id"] for x in one.splitlines() if x.strip()] == ["cmd-mu"]
