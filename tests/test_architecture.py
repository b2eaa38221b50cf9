"""The house plan (docs/architecture.md), checked: rooms by layer, no cycles, small modules.

Every import of every module under ``imbot_app/`` is read with :mod:`ast` (module level, inside
functions and under ``TYPE_CHECKING`` alike), so a back edge hidden in a function is caught too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "imbot_app"
MAX_LINES = 400

#: Layer of each room, bottom first (a module may import its own layer and those below).
LAYERS: dict[str, int] = {
    "models": 1,
    "conf": 1,
    "errors": 1,
    "events": 1,
    "signals": 1,
    "wire": 1,
    "sealing": 1,
    "sealed_fields": 1,
    "logsafe": 1,
    "protocol": 2,
    "outbound": 3,
    "inbound": 4,
    "dispatch": 5,
    "lifecycle": 6,
    "web": 7,
    "admin": 7,
    "management": 7,
    "testing": 7,
    "templatetags": 7,
    "checks": 7,
    "check_scope": 7,
    "apps": 7,
    "urls": 7,
    "tasks": 7,
    "migrations": 7,
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ["imbot_app", *path.relative_to(PACKAGE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    """The imbot_app modules ``name`` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import mod`` imports pkg.mod; ``from pkg import name`` imports pkg.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            # The longest known module the name starts with: a submodule, or its package.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


GRAPH = {name: set(_imports(name, path)) for name, path in MODULES.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_no_module_is_over_400_lines() -> None:
    long = {
        name: n
        for name, path in MODULES.items()
        if "migrations" not in name and (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_there_is_no_import_cycle() -> None:
    """Tarjan's strongly connected components over every import: none larger than one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in GRAPH[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    assert cycles == []


def test_every_module_belongs_to_a_room() -> None:
    assert {name for name in MODULES if name != "imbot_app" and _room(name) not in LAYERS} == set()


def test_rooms_import_only_rooms_below_them() -> None:
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if module != "imbot_app"
        for target in targets
        if target != "imbot_app" and LAYERS[_room(target)] > LAYERS[_room(module)]
    )
    assert upward == []


def test_only_the_registry_imports_a_protocol_version() -> None:
    """``protocol.vN`` is reached through ``imbot_app.protocol`` alone, from the app and bench.

    (The adapters' own unit tests, tests/test_v2_*.py, may name them.)
    """
    outside = [
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        if not module.startswith("imbot_app.protocol")
        for target in targets
        if target.startswith("imbot_app.protocol.v")
    ]
    for path in PACKAGE.parent.joinpath("bench").rglob("*.py"):
        text = path.read_text()
        if "imbot_app.protocol.v" in text:
            outside.append(str(path.relative_to(PACKAGE.parent)))
    assert outside == []


@pytest.mark.parametrize(
    "room", ["inbound", "dispatch", "outbound", "lifecycle", "web", "protocol", "management"]
)
def test_each_room_says_what_it_owns(room: str) -> None:
    docstring = ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text()))
    assert docstring is not None
    assert "owns" in docstring.lower()
    assert "import" in docstring.lower()


def test_the_version_free_rooms_never_name_a_bitrix24_method() -> None:
    """Method names (``imbot.message.add`` ...) live in protocol/vN; the rest asks the registry."""
    offenders = []
    for name, path in MODULES.items():
        if _room(name) in {"dispatch", "inbound", "admin", "lifecycle"} or name.endswith(
            "outbound.sender"
        ):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Constant)
                    and isinstance(node.value, str)
                    and node.value.startswith(("imbot.", "event.bind", "event.unbind"))
                ):
                    offenders.append(f"{name}: {node.value}")
    assert offenders == []


def test_the_import_graph_sees_imports_inside_functions() -> None:
    """The checks above would be blind without this: the graph holds a function-level import."""
    assert "imbot_app.lifecycle.handlers" in GRAPH["imbot_app.apps"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("imbot_app.sender.RestSender", "RestSender"),
        ("imbot_app.context.PendingSender", "PendingSender"),
    ],
)
def test_senders_named_by_their_old_paths_still_load(settings, old: str, new: str) -> None:
    from imbot_app.outbound.calls import sender_factory

    settings.IMBOT_SENDER = old
    assert type(sender_factory()()).__name__ == new
