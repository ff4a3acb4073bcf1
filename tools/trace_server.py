#!/usr/bin/env python3
"""Thin entry point: `python tools/trace_server.py` == `chapterx traces serve`."""

import sys

from chapterx.cli import main

if __name__ == "__main__":
    sys.exit(main(["traces", "serve", *sys.argv[1:]]))
