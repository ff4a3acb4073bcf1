"""What the wheel carries: the package-data patterns cover every shipped file (CI's
tools/smoke_wheel.sh then installs the wheel and compares the installed schemas with schemas/)."""

from __future__ import annotations

import glob
import tomllib
from pathlib import Path

from chapterx import paths
from tests.conftest import REPO_DIR

PYPROJECT = tomllib.loads((REPO_DIR / "pyproject.toml").read_text())["tool"]["setuptools"]


def _covered(root: Path, patterns: list[str]) -> set[str]:
    return {p for pat in patterns for p in glob.glob(pat, root_dir=root) if (root / p).is_file()}


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def test_mapped_folders_ship_every_file() -> None:
    for package, folder in (("chapterx.schemas", "schemas"), ("chapterx.examples", "examples")):
        assert PYPROJECT["package-dir"][package] == folder
        root = REPO_DIR / folder
        assert _covered(root, PYPROJECT["package-data"][package]) == _files(root), folder
    assert "chapterx.schemas" in (REPO_DIR / "setup.py").read_text()


def test_package_assets_are_covered() -> None:
    pkg = REPO_DIR / "chapterx"
    shipped = _covered(pkg, PYPROJECT["package-data"]["chapterx"])
    for sub in ("data", "viewer/static"):
        assert {f"{sub}/{f}" for f in _files(pkg / sub)} <= shipped, sub


def test_checkout_reads_the_top_level_schemas() -> None:
    assert paths.SCHEMAS_DIR == REPO_DIR / "schemas"
    assert paths.EXAMPLES_DIR == REPO_DIR / "examples"
    assert {p.name for p in paths.SCHEMAS_DIR.glob("*.json")} >= {"chapterx-bot.schema.json",
                                                                   "chapter2-em.schema.json"}
