"""YAML exactly as chapter2 reads it: PyYAML `safe_load` semantics (YAML 1.1), through ruamel.yaml.

chapter2 parses every config file with PyYAML, so `31_000` is an int, `yes`/`off` are booleans,
`017` is octal and `1e3` (no dot) is a *string*. ruamel's own YAML 1.1 tables are close but not
identical (they also treat `y`/`n` as booleans and `1e3` as a float), so we install resolver
tables that match PyYAML's and keep ruamel for everything else. Duplicate keys: PyYAML keeps the
last value; we do the same and report each duplicate so the operator can clean it up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

# PyYAML's YAML 1.1 implicit types (facts of the YAML 1.1 type repository, as PyYAML applies them).
_PYYAML_11 = [
    (
        "tag:yaml.org,2002:bool",
        re.compile(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$"),
        list("yYnNtTfFoO"),
    ),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
            |\.[0-9_]+(?:[eE][-+][0-9]+)?
            |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
            |[-+]?\.(?:inf|Inf|INF)
            |\.(?:nan|NaN|NAN))$""",
            re.X,
        ),
        list("-+0123456789."),
    ),
    (
        "tag:yaml.org,2002:int",
        re.compile(
            r"""^(?:[-+]?0b[0-1_]+
            |[-+]?0[0-7_]+
            |[-+]?(?:0|[1-9][0-9_]*)
            |[-+]?0x[0-9a-fA-F_]+
            |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$""",
            re.X,
        ),
        list("-+0123456789"),
    ),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"]),
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), ["~", "n", "N", ""]),
    (
        "tag:yaml.org,2002:timestamp",
        re.compile(
            r"""^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
            |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
            (?:[Tt]|[ \t]+)[0-9][0-9]?
            :[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
            (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$""",
            re.X,
        ),
        list("0123456789"),
    ),
    ("tag:yaml.org,2002:value", re.compile(r"^(?:=)$"), ["="]),
]


class _PyYAML11Resolver(VersionedResolver):
    """Resolver whose implicit-type table is PyYAML's, whatever `%YAML` directive a file carries."""

    _table: dict[Any, list[tuple[str, Any]]] | None = None

    @property
    def versioned_resolver(self) -> Any:
        if _PyYAML11Resolver._table is None:
            table: dict[Any, list[tuple[str, Any]]] = {}
            for tag, regexp, first in _PYYAML_11:
                for ch in first:
                    table.setdefault(ch, []).append((tag, regexp))
            _PyYAML11Resolver._table = table
        # ruamel does `resolvers += table.get(None, [])` on the returned lists; the table has no
        # None entry, so that appends nothing and the shared table stays intact.
        return _PyYAML11Resolver._table


@dataclass(frozen=True)
class DuplicateKey:
    """A mapping key written twice in one file; `line` is 1-based (of the later occurrence)."""

    key: str
    line: int
    path: str  # dotted path of the mapping holding the key ("" = top level)


def _yaml() -> YAML:
    y = YAML(typ="safe", pure=True)
    y.version = (1, 1)
    y.allow_duplicate_keys = True  # we resolve duplicates ourselves (last wins, like PyYAML)
    y.Resolver = _PyYAML11Resolver
    return y


def _drop_earlier_duplicates(
    node: Node, path: str, found: list[DuplicateKey], lines: dict[str, int] | None = None
) -> None:
    """Keep only the last occurrence of each key (PyYAML's behaviour), recording what was dropped.

    Also records the 1-based line of every key and sequence item under its dotted path in `lines`.
    """
    if lines is None:
        lines = {}
    if isinstance(node, MappingNode):
        first: dict[Any, int] = {}
        pairs: list[Any] = []
        for k, v in node.value:
            if isinstance(k, ScalarNode):
                ident = (str(getattr(k.tag, "value", k.tag)), k.value)
                if ident in first:
                    # PyYAML: the key keeps its first position, the later value wins.
                    found.append(DuplicateKey(str(k.value), k.start_mark.line + 1, path))
                    pairs[first[ident]] = (pairs[first[ident]][0], v)
                    continue
                first[ident] = len(pairs)
            pairs.append((k, v))
        node.value = pairs
        for k, v in node.value:
            child = f"{path}.{k.value}" if path and isinstance(k, ScalarNode) else (
                str(k.value) if isinstance(k, ScalarNode) else path
            )
            if isinstance(k, ScalarNode):
                lines.setdefault(child, k.start_mark.line + 1)
            _drop_earlier_duplicates(v, child, found, lines)
    elif isinstance(node, SequenceNode):
        for i, item in enumerate(node.value):
            child = f"{path}.{i}" if path else str(i)
            lines.setdefault(child, item.start_mark.line + 1)
            _drop_earlier_duplicates(item, child, found, lines)


class YAML11Error(ValueError):
    """A file that is not valid YAML; the message is one line with the position."""


def load_yaml11(text: str) -> tuple[Any, list[DuplicateKey]]:
    """Parse one YAML document the way chapter2 (PyYAML safe_load) does.

    Returns the value (None for an empty document) and the duplicate keys that were overridden.
    """
    value, duplicates, _ = load_yaml11_lines(text)
    return value, duplicates


def load_yaml11_lines(text: str) -> tuple[Any, list[DuplicateKey], dict[str, int]]:
    """`load_yaml11` plus the line of every key / item, by dotted path ("ensembles.0.faculty")."""
    y = _yaml()
    duplicates: list[DuplicateKey] = []
    lines: dict[str, int] = {}
    try:
        node = y.compose(text)
        if node is None:
            return None, duplicates, lines
        _drop_earlier_duplicates(node, "", duplicates, lines)
        constructor = y.constructor
        value = constructor.construct_document(node)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        raise YAML11Error(f"invalid YAML: {where}{problem}") from None
    return value, duplicates, lines
