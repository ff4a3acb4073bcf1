"""Locations of files that ship with the source tree (schemas, data)."""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
SCHEMAS_DIR = REPO_DIR / "schemas"
DATA_DIR = PACKAGE_DIR / "data"
