"""Architecture rules, checked on the source: imports point one way and form no cycle.

The import graph counts every ``import`` of a gaspprobe module, at module level or inside a
function (a lazy import is still a dependency: ``api`` importing ``pipeline`` lazily while
``pipeline`` imported ``api`` was the one cycle of the first version).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "gaspprobe"


def _modules() -> dict[str, Path]:
    mods = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def import_graph() -> dict[str, set[str]]:
    """module -> the gaspprobe modules it imports (``from pkg import sub`` counts as ``pkg.sub``)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if t and t.startswith("gaspprobe") and t != mod:
                    graph[mod].add(t)
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def _is_pkg_init_edge(a: str, b: str) -> bool:
    # A package's __init__ re-exporting its own submodules (and those importing siblings through the
    # package) is not a dependency cycle between subsystems.
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_graph_sees_known_edges():
    g = import_graph()
    assert "gaspprobe.runs" in g["gaspprobe.pipeline"]
    assert "gaspprobe.io" in g["gaspprobe.runs"]


def test_cycle_finder_on_a_hand_made_graph():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert find_cycles(g) == [["a", "b", "c"]]


def test_no_import_cycles():
    g = import_graph()
    g = {a: {b for b in bs if not _is_pkg_init_edge(a, b)} for a, bs in g.items()}
    assert find_cycles(g) == []


def test_library_never_imports_the_cli():
    # ``python -m gaspprobe.<pkg>`` launchers (``__main__``, for torchrun / accelerate) are entry
    # points, i.e. command line, not library.
    bad = sorted(f"{m} -> {t}" for m, ts in import_graph().items()
                 if not m.startswith("gaspprobe.cli") and not m.endswith(".__main__")
                 for t in ts if t.startswith("gaspprobe.cli"))
    assert bad == []


@pytest.mark.parametrize("low,high", [("gaspprobe.scenes", "gaspprobe.models"),
                                      ("gaspprobe.scenes", "gaspprobe.training"),
                                      ("gaspprobe.models", "gaspprobe.training"),
                                      ("gaspprobe.models", "gaspprobe.probing")])
def test_imports_point_one_way(low, high):
    bad = sorted(f"{m} -> {t}" for m, ts in import_graph().items() if m.startswith(low)
                 for t in ts if t.startswith(high))
    assert bad == []
