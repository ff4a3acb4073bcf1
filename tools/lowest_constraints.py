#!/usr/bin/env python3
"""Print pip constraints pinning every dependency of pyproject.toml to its declared lower bound.

CI installs the package with these constraints into a second venv and runs a subset of the tests,
so a floor in pyproject.toml is a version that was actually tested. Usage:
`python tools/lowest_constraints.py [--extra dev] > lowest.txt`.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

REQ = re.compile(r"^\s*([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)$")


def floors(requirements: list[str]) -> list[str]:
    """`name==lowest` for every requirement with a `>=` bound (others are left to the resolver)."""
    out = []
    for req in requirements:
        m = REQ.match(req.split(";")[0])
        if not m:
            continue
        low = re.search(r">=\s*([0-9][^,\s]*)", m.group(2))
        if low:
            out.append(f"{m.group(1)}=={low.group(1)}")
    return out


def main(argv: list[str]) -> int:
    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"])
    if "--extra" in argv:
        reqs += project["optional-dependencies"][argv[argv.index("--extra") + 1]]
    print("\n".join(floors(reqs)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
