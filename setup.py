"""Package list only (everything else is in pyproject.toml).

`chapterx.schemas` has no folder under `chapterx/`: pyproject's package-dir maps it to the top-level
`schemas/`, and `find_packages` cannot see a mapped package, so it is added here by name.
"""

from setuptools import find_packages, setup

setup(packages=[*find_packages(include=["chapterx", "chapterx.*", "compat", "compat.*"]), "chapterx.schemas"])
