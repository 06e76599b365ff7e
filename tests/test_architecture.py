"""The house rules, read from the imports: no import circles, and each room imports only what
docs/architecture.md lets it.

Imports inside functions count as well: a lazy import still ties the two modules together,
it only moves the failure from start-up to the first call.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "crm")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _imports(path: Path, module: str, known: Iterable[str]) -> set[str]:
    """Every module ``path`` imports, anywhere in it; ``from a import b`` names ``a.b`` when that
    is a module of ours, else ``a``."""
    known = set(known)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names.add(full if full in known else base)
    return names


def import_graph() -> dict[str, set[str]]:
    """Our modules and, for each, the modules of ours it imports."""
    modules = _modules()
    return {
        name: {i for i in _imports(path, name, modules) if i in modules and i != name}
        for name, path in modules.items()
    }


def circles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """The import circles: groups of modules that reach each other (Tarjan's strongly connected
    components of two or more modules), each sorted, the list sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        # Iterative depth-first search: a deep chain of imports must not hit the recursion limit.
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    found.append(sorted(group))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return sorted(found)


def test_the_circle_finder_finds_circles_and_only_them():
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a"},
        "d": {"a", "e"},
        "e": set(),
        "f": {"g"},
        "g": {"f"},
    }
    assert circles(graph) == [["a", "b", "c"], ["f", "g"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_lazy_relative_and_submodule_imports(tmp_path: Path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    source = "def f():\n    from . import b\n    from pkg.c import thing\n    import pkg.d\n"
    (tmp_path / "pkg" / "a.py").write_text(source)
    known = {"pkg", "pkg.a", "pkg.b", "pkg.c", "pkg.d"}
    found = _imports(tmp_path / "pkg" / "a.py", "pkg.a", known)
    assert {"pkg.b", "pkg.c", "pkg.d"} <= found


def test_no_import_circles():
    assert circles(import_graph()) == []


# Each room, and the modules it must never import (prefixes; a room may import itself).
FORBIDDEN: dict[str, tuple[str, ...]] = {
    # The domain knows no transport: a second one (Teams, a web page) needs no change in crm/.
    "crm": ("bot", "slack_bolt", "slack_sdk", "imapclient"),
    # Layers inside the domain: settings and the store below models, models below use cases,
    # use cases below analytics.
    "crm.config": ("crm",),
    "crm.db": ("crm.models", "crm.services", "crm.analytics"),
    "crm.models": ("crm.services", "crm.analytics", "crm.db"),
    "crm.services": ("crm.analytics",),
    # The runtime sits below every component it starts.
    "bot.runtime": ("bot",),
    "bot.rendering": ("bot", "crm"),
    # Mail capture never talks to Slack.
    "bot.mail": ("slack_bolt", "slack_sdk", "bot.slack", "bot.handlers", "bot.cli"),
    "bot.slack": ("bot.cli",),
    # Rendering turns data into payloads: no listeners, no command line, no store.
    "bot.slack.blocks": ("bot.handlers", "bot.cli", "crm.db"),
    "bot.handlers": ("bot.cli",),
    "bot.digests": ("bot.cli", "bot.handlers"),
    "bot.campaigns": ("bot.cli", "bot.handlers", "bot.slack"),
    "bot.scheduler": ("bot.cli", "bot.handlers"),
    # The command line's shared helpers import none of its commands.
    "bot.cli.common": ("bot.cli",),
}


@pytest.mark.parametrize("room", sorted(FORBIDDEN))
def test_each_room_imports_only_what_it_may(room: str):
    modules = _modules()
    in_room = {m: p for m, p in modules.items() if m == room or m.startswith(room + ".")}
    assert in_room, f"no module is in {room}"
    bad = {}
    for module, path in sorted(in_room.items()):
        wrong = sorted(
            name
            for name in _imports(path, module, modules)
            if not (name == room or name.startswith(room + "."))
            and any(name == f or name.startswith(f + ".") for f in FORBIDDEN[room])
        )
        if wrong:
            bad[module] = wrong
    assert bad == {}


def test_cli_command_modules_import_only_the_shared_helpers_of_the_cli():
    """Only bot.cli.main imports the command modules; a command module imports bot.cli.common
    and no other module of the command line."""
    graph = import_graph()
    cli = {m for m in graph if m.startswith("bot.cli.")}
    commands = cli - {"bot.cli.main", "bot.cli.__main__", "bot.cli.common"}
    assert {"bot.cli.customers", "bot.cli.deals", "bot.cli.admin"} <= commands
    bad = {m: sorted((graph[m] & (cli | {"bot.cli"})) - {"bot.cli.common"}) for m in commands}
    assert {m: v for m, v in bad.items() if v} == {}
