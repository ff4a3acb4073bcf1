#!/usr/bin/env python3
"""Thin entry point: `python tools/migrate.py ...` == `chapterx migrate ...`."""

import sys
from pathlib import Path

# From a checkout without `pip install`: import the package next to this folder.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from chapterx.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["migrate", *sys.argv[1:]]))
