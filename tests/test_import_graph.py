"""The house rules: no import circles among jotr's modules, and small package ``__init__`` files.

Every ``import`` counts, wherever it sits in a module (top level, inside a function, inside ``try``),
except those under ``if TYPE_CHECKING:``. A module outside ``pkg`` that imports ``pkg.sub`` also
depends on ``pkg`` (Python runs ``pkg/__init__.py`` first), and ``from pkg import name`` depends on
``pkg.name`` when ``name`` is a submodule. Strongly connected components of that graph with more than
one module are circles. Run on main before issue 26, it listed the four circles that issue names.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "jotr"
MAX_INIT_LINES = 50


def _module_files(src: Path = SRC, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    out: dict[str, Path] = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        if is_pkg:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import node in the tree, skipping the bodies of ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _existing(name: str, modules: dict[str, Path]) -> set[str]:
    """The longest prefix of ``name`` that is a module of the package (none for outside imports)."""
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in modules:
            return {prefix}
    return set()


def _ancestors(name: str) -> set[str]:
    """The packages above ``name``: ``a.b.c`` -> {``a``, ``a.b``}."""
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def import_graph(src: Path = SRC, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (anywhere except under ``if TYPE_CHECKING:``).

    ``import a.b.c`` and ``from a.b.c import x`` give an edge to ``a.b.c`` and, when the importer is
    outside them, to its parent packages ``a.b`` (whose ``__init__`` runs first); a submodule's own
    packages are not counted, or every package ``__init__`` that re-exports a submodule would be a
    circle. ``from a.b import c`` gives an edge to ``a.b.c`` when ``c`` is a submodule and to ``a.b``
    when some imported name is not.
    """
    modules = _module_files(src, package)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_pkg = path.name == "__init__.py"
        home = name if is_pkg else name.rpartition(".")[0]  # the package relative imports start from
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    deps |= _existing(alias.name, modules)
                continue
            if node.level:
                base = home.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            plain_names = False
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if sub in modules:
                    deps.add(sub)
                else:
                    plain_names = True
            if plain_names:
                deps |= _existing(target, modules)
        # Python runs every parent package's __init__ of an imported module first. A module inside that
        # package is past that point (its package is initialised before it), one outside is not: count the
        # parents the importer does not live in.
        own_packages = _ancestors(name)
        deps |= {p for d in deps for p in _ancestors(d) if p in modules and p not in own_packages}
        deps.discard(name)
        graph[name] = deps
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); returns every component with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _package_edges(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    inside = set(members)
    return [f"{a} -> {b}" for a in members for b in sorted(graph[a] & inside)]


def test_no_import_circles() -> None:
    graph = import_graph()
    circles = strongly_connected(graph)
    message = "\n\n".join(
        "circle: " + ", ".join(c) + "\n  " + "\n  ".join(_package_edges(graph, c)) for c in circles
    )
    assert not circles, "import circles among jotr modules:\n" + message


def _write_package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_graph_sees_lazy_relative_and_submodule_imports(tmp_path: Path) -> None:
    """A circle through a function-level relative import, ``from pkg import sub`` and a package re-export is
    found; the same circle closed only under ``if TYPE_CHECKING:`` is not one."""
    files = {
        "pkg/__init__.py": "",
        "pkg/a.py": "def f():\n    from . import b\n",
        "pkg/b.py": "from pkg.sub.c import x\n",
        "pkg/sub/__init__.py": "from pkg.sub.c import x\n",
        "pkg/sub/c.py": "x = 1\ndef g():\n    from pkg import a\n",
    }
    _write_package(tmp_path / "lazy", files)
    graph = import_graph(tmp_path / "lazy", "pkg")
    assert graph["pkg.a"] == {"pkg.b"} and graph["pkg.sub"] == {"pkg.sub.c"}
    assert graph["pkg.b"] == {"pkg.sub", "pkg.sub.c"}  # pkg/sub/__init__.py runs before pkg.sub.c
    assert strongly_connected(graph) == [["pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"]]

    files["pkg/sub/c.py"] = (
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\nx = 1\n"
    )
    _write_package(tmp_path / "typing_only", files)
    assert strongly_connected(import_graph(tmp_path / "typing_only", "pkg")) == []


def test_package_inits_are_small() -> None:
    too_big = {
        str(path.relative_to(SRC)): n
        for name, path in _module_files().items()
        if path.name == "__init__.py" and (n := len(path.read_text().splitlines())) > MAX_INIT_LINES
    }
    assert not too_big, f"package __init__ files over {MAX_INIT_LINES} lines: {too_big}"
