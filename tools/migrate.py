#!/usr/bin/env python3
"""Thin entry point: `python tools/migrate.py ...` == `chapterx migrate ...`."""

import sys

from chapterx.cli import main

if __name__ == "__main__":
    sys.exit(main(["migrate", *sys.argv[1:]]))
