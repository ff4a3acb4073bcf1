"""Locations of files that ship inside the package (JSON Schemas, data), found via importlib.resources.

In a wheel the schemas and examples are `chapterx/schemas/` and `chapterx/examples/` (the build maps the
top-level folders there, see pyproject.toml); in a checkout or an editable install those folders do not
exist under `chapterx/`, so the top-level ones (the same files) are used.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

PACKAGE_DIR = Path(str(resources.files("chapterx")))
REPO_DIR = PACKAGE_DIR.parent
SOURCE_SCHEMAS_DIR = REPO_DIR / "schemas"
"""The schemas' source folder (only exists in a checkout); `python -m chapterx_compat.chapter2.schema` writes here."""


def _shipped(name: str) -> Path:
    """`chapterx/<name>` as installed from a wheel, else the checkout's top-level `<name>/`."""
    installed = PACKAGE_DIR / name
    if installed.is_dir():
        return installed
    source = REPO_DIR / name
    if source.is_dir():
        return source
    raise RuntimeError(f"chapterx is installed without its {name}/ (looked in {installed} and {source}); "
                       "reinstall the package")


SCHEMAS_DIR = _shipped("schemas")
EXAMPLES_DIR = _shipped("examples")
"""The bundled example deployment (`chapterx demo`, the README's first command)."""
DATA_DIR = PACKAGE_DIR / "data"
