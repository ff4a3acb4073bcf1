"""Package list only (everything else is in pyproject.toml).

`chapterx.schemas` / `chapterx.examples` have no folder under `chapterx/`: pyproject's package-dir maps
them to the top-level `schemas/` / `examples/`, and `find_packages` cannot see a mapped package, so they are added here by name.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["chapterx", "chapterx.*", "chapterx_compat", "chapterx_compat.*"]), "chapterx.schemas", "chapterx.examples"])
