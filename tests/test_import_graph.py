"""The import graph of ``frgd`` and ``frgd_studio`` has no cycles between modules (built by grimp, as import-linter
builds it: every import statement counts, function-level and ``TYPE_CHECKING`` ones included)."""

from __future__ import annotations

import grimp
import pytest

ALLOWED_CYCLES: dict[str, set[frozenset[str]]] = {
    "frgd": set(),
    "frgd_studio": set(),
}
"""Known cycles (a strongly connected set of modules, exactly) that the test lets pass, per package."""


def import_cycles(graph: grimp.ImportGraph, package: str) -> list[list[str]]:
    """The strongly connected components of more than one module of ``package`` (Tarjan, iterative), sorted."""
    modules = sorted(m for m in graph.modules if m == package or m.startswith(package + "."))
    inside = set(modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & inside) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            if i < len(edges[v]):
                work.append((v, i + 1))
                w = edges[v][i]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    components.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return sorted(components)


def _describe(graph: grimp.ImportGraph, component: list[str]) -> str:
    members = set(component)
    lines = []
    for m in component:
        for imported in sorted(graph.find_modules_directly_imported_by(m) & members):
            details = graph.get_import_details(importer=m, imported=imported)
            where = ", ".join(f"line {d['line_number']}" for d in details)
            lines.append(f"  {m} -> {imported} ({where})")
    return "cycle between " + ", ".join(component) + ":\n" + "\n".join(lines)


@pytest.mark.parametrize("package", sorted(ALLOWED_CYCLES))
def test_no_import_cycles(package: str) -> None:
    graph = grimp.build_graph(package, cache_dir=None)
    cycles = [c for c in import_cycles(graph, package) if frozenset(c) not in ALLOWED_CYCLES[package]]
    assert not cycles, "\n".join(_describe(graph, c) for c in cycles)


def test_cycle_finder_finds_cycles() -> None:
    """The finder itself: a three-module ring and a two-module pair are found, a chain is not."""
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.b", "p.c", "p.d", "p.e", "p.f"):
        graph.add_module(name)
    for importer, imported in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.d", "p.e"), ("p.e", "p.d"),
                               ("p.e", "p.f"), ("p.f", "p.a")):  # fmt: skip
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph, "p") == [["p.a", "p.b", "p.c"], ["p.d", "p.e"]]
