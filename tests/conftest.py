"""Shared test fixtures: where `../shared/` lives, and a runner for the CLI in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

REPO_DIR = Path(__file__).resolve().parents[1]
FIXTURES_DIR = REPO_DIR / "tests" / "fixtures"
SHARED_DIR = Path(os.environ.get("CHAPTERX_SHARED", REPO_DIR.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """Path under ../shared/, or skip the test cleanly when that material is absent."""
    path = SHARED_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared material not present: {path}")
    return path


def golden_cases(*parts: str) -> dict[str, dict[str, Any]]:
    """A golden file's cases by id (skips the test when ../shared/ is absent)."""
    data = json.loads(shared_path("golden", *parts).read_text(encoding="utf-8"))
    return {c["id"]: c for c in data["cases"]}


def golden_ids(*parts: str) -> list[str]:
    """Case ids to parametrize with; one placeholder id (whose test then skips) when ../shared/ is absent."""
    try:
        return list(golden_cases(*parts))
    except pytest.skip.Exception:
        return ["skipped"]


@pytest.fixture
def shared() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared/ is not present")
    return SHARED_DIR
