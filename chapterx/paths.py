"""Locations of files that ship inside the package (JSON Schemas, data), found via importlib.resources.

In a wheel the schemas are `chapterx/schemas/` (the build maps the top-level `schemas/` there, see
pyproject.toml); in a checkout or an editable install that folder does not exist under `chapterx/`, so
the top-level `schemas/` (the same files) is used.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(str(resources.files("chapterx")))
REPO_DIR = PACKAGE_DIR.parent
SOURCE_SCHEMAS_DIR = REPO_DIR / "schemas"
"""The schemas' source folder (only exists in a checkout); `python -m compat.chapter2.schema` writes here."""


def _schemas_dir() -> Path:
    installed = PACKAGE_DIR / "schemas"
    if installed.is_dir():
        return installed
    if SOURCE_SCHEMAS_DIR.is_dir():
        return SOURCE_SCHEMAS_DIR
    raise RuntimeError(
        f"chapterx is installed without its JSON Schemas (looked in {installed} and {SOURCE_SCHEMAS_DIR}); "
        "reinstall the package"
    )


SCHEMAS_DIR = _schemas_dir()
DATA_DIR = PACKAGE_DIR / "data"
