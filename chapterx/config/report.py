"""Validation results shared by both config dialects, so `chapterx validate` prints one format.

Human form: `file:line: error|warning: message`. JSON form (the CLI contract):
`{"ok": bool, "files": [{"path", "dialect", "errors": [{"message", "key", "line"}], "warnings": [...]}]}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One error or warning about one file; `key` is a dotted path (or None), `line` 1-based (or None)."""

    message: str
    key: str | None = None
    line: int | None = None
    unknown_key: bool = False
    """An unknown key (the one warning `--strict` turns into an error); not part of the JSON form."""

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "key": self.key, "line": self.line}


@dataclass
class FileReport:
    """Everything validation found in one file (or one em / bot resolved through its layers)."""

    path: str
    dialect: str  # "chapterx" | "chapter2" | "other" (not a config: probe catalog, token file...)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    note: str | None = None  # e.g. "not a config: steering probe catalog"
    unreadable: bool = False  # the path could not be used at all (missing, unreadable): CLI exit 2

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "dialect": self.dialect,
            "errors": [p.to_json() for p in self.errors],
            "warnings": [p.to_json() for p in self.warnings],
        }
        if self.note:
            out["note"] = self.note
        return out

    def human_lines(self) -> list[str]:
        lines = []
        for severity, problems in (("error", self.errors), ("warning", self.warnings)):
            for p in problems:
                where = f"{self.path}:{p.line}" if p.line else self.path
                lines.append(f"{where}: {severity}: {p.message}")
        if self.note and not self.errors:
            lines.append(f"{self.path}: note: {self.note}")
        return lines
