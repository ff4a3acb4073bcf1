"""The CLI contract every other check depends on: it starts, it has its commands."""

from __future__ import annotations

import subprocess
import sys

from chapterx.cli import build_parser


def test_help_lists_every_command() -> None:
    help_text = build_parser().format_help()
    for command in ("run", "validate", "config", "schema", "migrate", "traces", "replay"):
        assert command in help_text


def test_module_entry_point_prints_version() -> None:
    out = subprocess.run([sys.executable, "-m", "chapterx", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.startswith("chapterx ")
