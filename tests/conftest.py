"""Shared test fixtures: where `../shared/` lives, and a runner for the CLI in-process."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture
def shared() -> Path:
    if not SHARED_DIR.is_dir():
        pytest.skip("../shared/ is not present")
    return SHARED_DIR
