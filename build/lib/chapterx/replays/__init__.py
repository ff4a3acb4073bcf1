"""Case shapes `chapterx replay` understands, one module per shape.

Each module in this package that defines `SHAPE` (a `CaseShape`) is found by `shapes()`; adding a
golden-case shape is one new module here, nothing else. A shape says whether a case object is
its kind (`matches`, given the whole case with `input`, or a bare input) and runs it offline
(`run`, given the input), returning the observed result in the case's `expected` shape.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CaseShape:
    name: str
    matches: Callable[[Mapping[str, Any]], bool]
    run: Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
    # Lower runs first when several shapes match the same input.
    priority: int = 100


def shapes() -> list[CaseShape]:
    """Every registered shape, most specific first."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        shape = getattr(module, "SHAPE", None)
        if isinstance(shape, CaseShape):
            found.append(shape)
    return sorted(found, key=lambda s: (s.priority, s.name))


def shape_for(case_input: Mapping[str, Any]) -> CaseShape | None:
    for shape in shapes():
        if shape.matches(case_input):
            return shape
    return None
