"""The import graph keeps the shape docs/architecture.md draws.

Read from the source with `ast` (every import, including ones deferred inside functions, since a
deferred import is still a dependency), so a change that bends a rule fails here with the module and
the import that did it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"chapterx": REPO / "chapterx", "chapterx_compat": REPO / "compat"}


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for prefix, base in ROOTS.items():
        for path in base.rglob("*.py"):
            parts = (prefix, *path.relative_to(base).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """Absolute names of everything `name` imports (deferred and TYPE_CHECKING-only ones excluded
    only for TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names if f"{module}.{alias.name}" in MODULES)
    return found


def _internal(module: str) -> str | None:
    while module and module not in MODULES:
        module = module.rpartition(".")[0]
    return module or None


GRAPH: dict[str, set[str]] = {}
EXTERNAL: dict[str, set[str]] = {}
for _name, _path in MODULES.items():
    _found = _imports(_name, _path)
    GRAPH[_name] = {m for m in (_internal(i) for i in _found) if m and m != _name}
    EXTERNAL[_name] = {i.split(".")[0] for i in _found if _internal(i) is None}


def _under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_graph_was_read() -> None:
    assert len(MODULES) > 100 and GRAPH["chapterx.cli"], "the import graph came out empty"
    assert any(m.startswith("chapterx_compat.chapter2.") for m in MODULES)


def test_compat_is_installed_under_the_project_namespace() -> None:
    """`compat/` is the folder; the import name is `chapterx_compat` (no generic top-level `compat`)."""
    assert not any(i == "compat" or i.startswith("compat.") for deps in EXTERNAL.values() for i in deps)
    assert (REPO / "chapterx_compat").resolve() == (REPO / "compat").resolve()


def test_no_import_cycles() -> None:
    """Module-level cycles make import order matter and hide a layer violation; none are allowed."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_only_the_discord_adapter_imports_discord_py() -> None:
    offenders = sorted(m for m, ext in EXTERNAL.items() if "discord" in ext and not _under(m, ("chapterx.discord",)))
    assert offenders == []


# (package, packages it must never import): the one-way flow of docs/architecture.md.
ABOVE_CONFIG = ("chapterx.agent", "chapterx.discord", "chapterx.llm", "chapterx.context", "chapterx.trace",
                "chapterx.viewer", "chapterx.api", "chapterx.app", "chapterx.commands", "chapterx.tools",
                "chapterx.fleet", "chapterx.replays", "chapterx_compat.chapter2.runtime")
RULES: list[tuple[str, tuple[str, ...]]] = [
    ("chapterx.config", ABOVE_CONFIG),
    ("chapterx.context", ("chapterx.agent", "chapterx.llm", "chapterx.trace", "chapterx.viewer", "chapterx.api",
                          "chapterx.app", "chapterx.commands", "chapterx.discord.connector", "chapterx.tools")),
    ("chapterx.postprocess", ("chapterx.agent", "chapterx.llm", "chapterx.trace", "chapterx.viewer",
                              "chapterx.api", "chapterx.app", "chapterx.commands", "chapterx.discord.connector")),
    ("chapterx.trace", ("chapterx.agent", "chapterx.discord", "chapterx.llm", "chapterx.context",
                        "chapterx.viewer", "chapterx.api", "chapterx.app", "chapterx.commands", "chapterx.tools")),
    ("chapterx.llm", ("chapterx.agent", "chapterx.discord", "chapterx.viewer", "chapterx.api", "chapterx.app",
                      "chapterx.commands", "chapterx.tools")),
    ("chapterx.viewer", ("chapterx.agent", "chapterx.discord", "chapterx.llm", "chapterx.api", "chapterx.app",
                         "chapterx.commands", "chapterx.tools")),
    ("chapterx.tools", ("chapterx.app", "chapterx.commands", "chapterx.viewer", "chapterx.discord.connector")),
    ("chapterx.agent", ("chapterx.app", "chapterx.commands", "chapterx.viewer", "chapterx.api",
                        "chapterx.discord.connector")),
]


# Deliberate exceptions, each with its reason.
ALLOWED = {
    # `chapterx validate`'s engine gathers every area's checks of a config file (tool plugin names).
    ("chapterx.config.validate", "chapterx.tools.validate"),
}


@pytest.mark.parametrize(("package", "forbidden"), RULES, ids=[r[0] for r in RULES])
def test_layer_rule(package: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(f"{m} -> {d}" for m in GRAPH if _under(m, (package,)) for d in GRAPH[m]
                 if _under(d, forbidden) and (m, d) not in ALLOWED)
    assert bad == []


def test_pure_stages_do_no_io() -> None:
    """context/ and postprocess/ are pure: no network, process or Discord library underneath them."""
    io_libs = {"aiohttp", "discord", "httpx", "subprocess", "socket", "anthropic", "openai", "sqlite3"}
    bad = sorted(f"{m}: {sorted(EXTERNAL[m] & io_libs)}" for m in EXTERNAL
                 if _under(m, ("chapterx.context", "chapterx.postprocess")) and EXTERNAL[m] & io_libs)
    assert bad == []


def test_commands_and_app_sit_on_top() -> None:
    """Nothing below the CLI reaches up into a command module or the app wiring."""
    bad = sorted(f"{m} -> {d}" for m, deps in GRAPH.items() for d in deps
                 if _under(d, ("chapterx.commands", "chapterx.app"))
                 and not _under(m, ("chapterx.cli", "chapterx.commands", "chapterx.app", "chapterx.__main__")))
    assert bad == []
