"""Reading config files and YAML text safely, with line numbers for every key.

YAML is read with YAML 1.2 *core* schema semantics (what upstream's `yaml` package does):
only true/false are booleans, `yes`/`no`/`on`/`off` stay strings, `31_000` and `2024-01-01` stay
strings, duplicate keys are errors. ruamel.yaml's round-trip loader gives the line numbers; its
resolver is replaced by a strict core one because ruamel still resolves 1.1-style ints and dates.
"""

from __future__ import annotations

import contextlib
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.resolver import VersionedResolver

from chapterx.config.errors import ConfigError

MAX_FILE_BYTES = 1024 * 1024  # configs are small; a bigger file is a mistake (or an attack)
MAX_NODES = 200_000  # after alias expansion: stops "billion laughs" documents

_CORE_RULES: list[tuple[str, re.Pattern[str], str]] = [
    ("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF"),
    ("tag:yaml.org,2002:null", re.compile(r"^(?:~|null|Null|NULL|)$"), "~nN"),
    ("tag:yaml.org,2002:int", re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$"), "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        re.compile(
            r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
        ),
        "-+0123456789.",
    ),
]


def _core_table() -> dict[Any, list[tuple[str, re.Pattern[str]]]]:
    table: dict[Any, list[tuple[str, re.Pattern[str]]]] = {}
    for tag, regexp, first in _CORE_RULES:
        for ch in first:
            table.setdefault(ch, []).append((tag, regexp))
    table.setdefault("", []).append(("tag:yaml.org,2002:null", _CORE_RULES[1][1]))
    return table


# Built once: ruamel consults it for every plain scalar. It has no `None` entry, so ruamel's
# `resolvers += table.get(None, [])` appends nothing and the shared lists stay intact.
_CORE_TABLE = _core_table()


class _CoreResolver(VersionedResolver):
    """Implicit typing of plain scalars exactly per the YAML 1.2 core schema."""

    @property
    def versioned_resolver(self) -> Any:
        return _CORE_TABLE


def _yaml() -> YAML:
    y = YAML(typ="rt")
    y.Resolver = _CoreResolver
    y.allow_duplicate_keys = False
    return y


@dataclass
class Document:
    """A parsed YAML document as plain Python data plus the 1-based line of every key path."""

    source: str
    data: Any
    lines: dict[str, int] = field(default_factory=dict)
    empty: bool = False  # empty, only comments, or an explicit null

    def line_of(self, key: str | None) -> int | None:
        """Line of a dotted key path, falling back to its nearest ancestor."""
        return line_of(self.lines, key)


def line_of(lines: dict[str, int], key: str | None) -> int | None:
    """Line of a dotted key path in a key -> line table, falling back to its nearest ancestor."""
    while key:
        if key in lines:
            return lines[key]
        if "." not in key:
            return None
        key = key.rsplit(".", 1)[0]
    return None


def read_text(path: Path, *, what: str = "config file", limit: int = MAX_FILE_BYTES) -> str:
    """The file's text, or a one-line ConfigError saying why it cannot be used."""
    shown = str(path)
    if not path.exists():
        raise ConfigError(f"{what} not found", path=shown, exit_code=2)
    if path.is_dir():
        raise ConfigError(f"is a directory, expected a YAML {what}", path=shown, exit_code=2)
    try:
        st = path.stat()
        # A FIFO, device or socket would block or never end: refuse instead of hanging.
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"not a regular file (a pipe, device or socket), expected a YAML {what}",
                              path=shown, exit_code=2)
        size = st.st_size
        if size > limit:
            raise ConfigError(
                f"file is too large ({size / 1048576:.1f} MB; a {what} may be at most {limit // 1048576} MB)",
                path=shown,
            )
        with path.open("rb") as fh:
            raw = fh.read(limit + 1)  # files that report size 0 (/proc) still stop at the limit
    except PermissionError:
        raise ConfigError("cannot read file: permission denied", path=shown, exit_code=2) from None
    except OSError as exc:
        raise ConfigError(f"cannot read file: {exc.strerror or exc}", path=shown, exit_code=2) from None
    return decode_text(raw, shown, limit)


def decode_text(raw: bytes, shown: str, limit: int = MAX_FILE_BYTES) -> str:
    """UTF-8 text without NUL bytes; anything else is a binary file, not a config."""
    if len(raw) > limit:
        raise ConfigError(f"file is too large ({len(raw) / 1048576:.1f} MB; at most 1 MB)", path=shown)
    if b"\x00" in raw:
        raise ConfigError("binary file, not a YAML config", path=shown)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text (bad byte at offset {exc.start}); not a YAML config", path=shown) from None
    return text[1:] if text.startswith("\ufeff") else text


def _problem_line(exc: MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def _yaml_message(exc: YAMLError) -> str:
    if isinstance(exc, MarkedYAMLError):
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if "duplicate key" in problem or "found duplicate key" in str(exc):
            return "duplicate key " + _dup_key_name(str(exc))
        return "YAML syntax error: " + problem.split("\n")[0]
    return "YAML error: " + str(exc).split("\n")[0]


def _dup_key_name(text: str) -> str:
    m = re.search(r'found duplicate key "([^"]*)"', text)
    return f"'{m.group(1)}' (YAML 1.2 forbids duplicate keys)" if m else "(YAML 1.2 forbids duplicate keys)"


def parse_yaml(text: str, source: str) -> Document:
    """Parse one YAML document; syntax errors, duplicate keys and alias bombs raise ConfigError."""
    if len(text) > MAX_FILE_BYTES:
        raise ConfigError("text is too large (at most 1 MB)", path=source)
    _check_nesting(text, source)
    try:
        docs = list(_yaml().load_all(text))
    except YAMLError as exc:
        line = _problem_line(exc) if isinstance(exc, MarkedYAMLError) else None
        raise ConfigError(_yaml_message(exc), path=source, line=line) from None
    except RecursionError:
        raise ConfigError("YAML is nested too deeply", path=source) from None
    if len(docs) > 1:
        raise ConfigError("holds several YAML documents (---); a config file must hold one", path=source)
    root = docs[0] if docs else None
    _check_size(root, source)
    lines: dict[str, int] = {}
    try:
        data = _plain(root, "", lines, source)
    except RecursionError:
        raise ConfigError("YAML is nested too deeply", path=source) from None
    return Document(source=source, data=data, lines=lines, empty=root is None)


MAX_DEPTH = 100


def _check_nesting(text: str, source: str) -> None:
    """Refuse absurd nesting before the (recursive, slow on such input) YAML loader sees it.

    Counts unclosed flow brackets and leading indentation; real configs stay far below the limits,
    even with brackets inside prompt text.
    """
    depth = peak = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            peak = max(peak, depth)
        elif ch in "]}" and depth:
            depth -= 1
    if peak > 2 * MAX_DEPTH:
        raise ConfigError("YAML is nested too deeply", path=source)
    for number, line in enumerate(text.split("\n"), 1):
        if len(line) - len(line.lstrip(" ")) > 8 * MAX_DEPTH:
            raise ConfigError("YAML is nested too deeply (indentation)", path=source, line=number)


def _check_size(root: Any, source: str) -> None:
    """Count nodes as if aliases were expanded, memoised per object so the count itself is cheap."""
    memo: dict[int, int] = {}

    def size(node: Any, depth: int) -> int:
        if depth > 100:
            raise ConfigError("YAML is nested too deeply", path=source)
        if not isinstance(node, (dict, list)):
            return 1
        nid = id(node)
        if nid in memo:
            return memo[nid]
        memo[nid] = 1  # cycle guard (recursive aliases)
        children = node.values() if isinstance(node, dict) else node
        total = 1
        for child in children:
            total += size(child, depth + 1)
            if total > MAX_NODES:
                raise ConfigError(
                    "document expands to too many values (alias bomb?); refusing to load it", path=source
                )
        memo[nid] = total
        return total

    size(root, 0)


def _plain(node: Any, path: str, lines: dict[str, int], source: str) -> Any:
    """Round-trip nodes -> dict/list/str/int/float/bool/None, recording key lines."""
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key, value in node.items():
            if isinstance(key, (dict, list, tuple)):
                raise ConfigError("complex (non-scalar) mapping keys are not allowed", path=source)
            skey = _key_text(key)
            child = f"{path}.{skey}" if path else skey
            with contextlib.suppress(Exception):  # line info is best effort
                lines[child] = node.lc.key(key)[0] + 1
            out[skey] = _plain(value, child, lines, source)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for i, value in enumerate(node):
            child = f"{path}.{i}" if path else str(i)
            with contextlib.suppress(Exception):  # line info is best effort
                lines[child] = node.lc.item(i)[0] + 1
            items.append(_plain(value, child, lines, source))
        return items
    if node is None or isinstance(node, bool):
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, (bytes, bytearray)):
        raise ConfigError(f"{path or 'value'}: binary (!!binary) values are not allowed", path=source)
    # tagged scalars (!foo), sets, timestamps given with an explicit tag...
    value = getattr(node, "value", None)
    if isinstance(value, str):
        return value
    raise ConfigError(f"{path or 'value'}: unsupported YAML value of type {type(node).__name__}", path=source,
                      line=lines.get(path))


def _key_text(key: Any) -> str:
    """Mapping keys as strings (upstream's JS objects stringify them: `1: x` has key "1")."""
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def load_file(path: Path, *, what: str = "config file") -> Document:
    """Read and parse one config file (missing, unreadable, binary, huge or bad YAML -> ConfigError)."""
    return parse_yaml(read_text(path, what=what), str(path))
