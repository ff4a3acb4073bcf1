"""The narrow surface the rest of chapterx uses to reach chapter2 deployments.

The CLI (`validate`, `config show --ems`, `migrate`) and the runtime call only these functions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chapterx.config.report import FileReport


def looks_like_chapter2(path: Path) -> bool:
    """True when `path` is a chapter2 `ems/` folder (or one em folder inside one)."""
    return False  # filled in by the chapter2 compatibility work


def validate_deployment(path: Path, *, strict: bool = False, home: bool = False) -> list[FileReport]:
    """One report per em, each em resolved through its layers (dialect "chapter2")."""
    raise NotImplementedError("chapter2 validation is not yet available")


def translate_em(ems_dir: Path, name: str, *, home: bool = False) -> dict[str, Any]:
    """The em's resolved config translated to ChapterX keys (what `migrate` writes for it)."""
    raise NotImplementedError("chapter2 translation is not yet available")
