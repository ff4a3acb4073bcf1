"""`chapterx replay` on the whole decision and history golden files, in-process through the CLI entry point:
one JSON object per case, `observed` with exactly the case's `expected` keys, and equal to `expected` under
the same comparison and adjustments as the vector tests (`test_activation_decisions.py`)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from chapterx.cli import main as cli_main
from tests.conftest import shared_path
from tests.discord.test_activation_decisions import (
    RUNTIME_ADJUSTMENTS,
    _activation_mismatches,
    _history_mismatches,
)
from tests.pipeline.test_vector_differences import ACTIVATION_ADJUSTMENTS, HISTORY_ADJUSTMENTS


def _replay(name: str, capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    path = shared_path("golden", "chapterx", name)
    cases = json.loads(path.read_text(encoding="utf-8"))["cases"]
    capsys.readouterr()
    assert cli_main(["replay", str(path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    return cases, lines


def _check(cases: list[dict[str, Any]], lines: list[dict[str, Any]], mismatches: Any,
           adjustments: dict[str, Any]) -> None:
    assert [x["id"] for x in lines] == [c["id"] for c in cases]
    assert {x["shape"] for x in lines} == {"batches"}
    failures = []
    for case, line in zip(cases, lines, strict=True):
        observed, expected = line["observed"], copy.deepcopy(case["expected"])
        assert list(observed) == list(expected), case["id"]
        if case["id"] in adjustments:
            adjustments[case["id"]](expected, case)
        got = {**observed, "provider_bodies": [r["body"] for r in observed.get("provider_requests", [])]}
        problems = mismatches(case["id"], got, expected)
        if problems:
            failures.append(f"{case['id']}: {problems[0][:300]}")
    assert failures == []


def test_replay_cli_runs_every_decision_case(capsys: pytest.CaptureFixture[str]) -> None:
    cases, lines = _replay("activation-decisions.json", capsys)
    assert len(cases) == 65
    _check(cases, lines, _activation_mismatches, {**ACTIVATION_ADJUSTMENTS, **RUNTIME_ADJUSTMENTS})


def test_replay_cli_runs_every_history_case(capsys: pytest.CaptureFixture[str]) -> None:
    cases, lines = _replay("history.json", capsys)
    assert len(cases) == 16
    _check(cases, lines, _history_mismatches, HISTORY_ADJUSTMENTS)


def test_replay_cli_one_case_by_id(capsys: pytest.CaptureFixture[str]) -> None:
    path = shared_path("golden", "chapterx", "activation-decisions.json")
    case_id = json.loads(path.read_text(encoding="utf-8"))["cases"][0]["id"]
    capsys.readouterr()
    assert cli_main(["replay", str(path), "--case-id", case_id]) == 0
    (line,) = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.strip()]
    assert line["id"] == case_id and line["observed"]["batches"][0]["index"] == 0
