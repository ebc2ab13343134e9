"""The shape DESIGN.md promises, checked on the code itself (not on a picture of it).

* No import cycles between the project's modules, counting every import: top level, inside
  functions, and under `TYPE_CHECKING`.
* Dependencies point one way: `bot/` knows no handler, coaching or concrete channel; `channels/`
  knows no handler or coaching; `storage/` knows none of those; `coaching/` knows no handler.
* The kernel names no audience, no domain and no concrete channel in its code (comments and
  docstrings aside).
* SQL only in `storage/`: `coaching/` and `handlers/` import no `sqlalchemy` (in any form, at any
  level) and hold no database connection.
"""

from __future__ import annotations

import ast
import graphlib
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "channels", "handlers", "coaching", "storage")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    found = {"main": ROOT / "main.py"}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            found[_module_name(path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an imported name lives in (the longest known prefix)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                found = _resolve(target, modules)
                if found and found != module:
                    graph[module].add(found)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in cycles)
    graphlib.TopologicalSorter(graph).prepare()  # the same verdict from the standard library


FORBIDDEN = {
    "bot": ("handlers", "coaching", "channels."),
    "channels": ("handlers", "coaching"),
    "storage": ("handlers", "coaching", "channels"),
    "coaching": ("handlers",),
}
ALLOWED = {"bot": ("channels.base", "channels.markup")}


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_dependencies_point_one_way(layer: str) -> None:
    bad = []
    for module, targets in import_graph().items():
        if module.split(".")[0] != layer:
            continue
        for target in sorted(targets):
            if target in ALLOWED.get(layer, ()):
                continue
            if any(target == f or target.startswith(f if f.endswith(".") else f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{module} → {target}")
    assert not bad, f"{layer}/ must not import these:\n" + "\n".join(bad)


DOMAIN_WORDS = re.compile(
    r"(?<![a-z])(customers?|budtenders?|chatters?|team_leads?|sales_managers?|deals?|loyalty|store_name"
    r"|sms|slack|telegram)(?![a-z])",
    re.IGNORECASE,
)


def _code_tokens(source: str) -> list[tuple[int, str]]:
    """Names and string literals that are code: comments and docstrings left out."""
    docstrings: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            docstrings.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    kinds = {tokenize.NAME, tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}
    return [
        (tok.start[0], tok.string)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline)
        if tok.type in kinds and tok.start[0] not in docstrings
    ]


def test_kernel_names_no_domain_and_no_channel() -> None:
    found = []
    for path in sorted((ROOT / "bot").glob("*.py")):
        for line, text in _code_tokens(path.read_text(encoding="utf-8")):
            for word in DOMAIN_WORDS.findall(text):
                found.append(f"bot/{path.name}:{line}: {word!r} in {text[:60]!r}")
            if "store_name" in text:
                found.append(f"bot/{path.name}:{line}: 'store_name'")
    assert not found, "the kernel names the domain or a channel:\n" + "\n".join(found)


SQL_FREE = ("coaching", "handlers")
CONNECTION_NAMES = ("AsyncConnection", "InlineConnection", "AsyncEngine")


def sqlalchemy_uses(source: str) -> list[tuple[int, str]]:
    """Where a module imports sqlalchemy or names a connection: top level, in functions, under TYPE_CHECKING."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, f"import {a.name}") for a in node.names if a.name.split(".")[0] == "sqlalchemy"]
        elif isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "sqlalchemy":
            found.append((node.lineno, f"from {node.module} import ..."))
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and getattr(node.func, "id", getattr(node.func, "attr", "")) in {"import_module", "__import__"}
              and str(node.args[0].value).split(".")[0] == "sqlalchemy"):
            found.append((node.lineno, f"import_module({node.args[0].value!r})"))
    for line, text in _code_tokens(source):  # annotations too, quoted ones included
        found += [(line, name) for name in CONNECTION_NAMES if name in text]
    return sorted(set(found))


def test_the_sqlalchemy_check_sees_every_form() -> None:
    source = (
        "from __future__ import annotations\n"
        "import sqlalchemy as sa\n"
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy.ext.asyncio import AsyncConnection\n"
        "def f(conn: 'AsyncConnection') -> None:\n"
        "    import sqlalchemy.orm\n"
        "    importlib.import_module('sqlalchemy.sql')\n"
        "    '''A docstring may say AsyncConnection.'''\n"
        "x = 1  # a comment may say import sqlalchemy\n"
    )
    assert [line for line, _ in sqlalchemy_uses(source)] == [2, 5, 5, 6, 7, 8]
    assert sqlalchemy_uses("from storage.db import Database\nimport sqlalchemy_utils\n") == []


@pytest.mark.parametrize("layer", SQL_FREE)
def test_sql_only_in_storage(layer: str) -> None:
    bad = []
    for path in sorted((ROOT / layer).rglob("*.py")):
        for line, what in sqlalchemy_uses(path.read_text(encoding="utf-8")):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert not bad, f"{layer}/ must leave SQL to storage/ (a repository method instead):\n" + "\n".join(bad)
