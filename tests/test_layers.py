"""The import graph points down: no cycle among project modules, no import up the layers.

Layers, bottom to top: ``contract`` (the vocabulary, imports nothing of ours) ->
``mobility`` (config, secrets, I/O, quality, publishing, runner) and ``expectations``
-> ``transforms``, ``reporting`` (buyers' reports), ``portal`` (the customers' web app)
-> ``jobs`` -> ``benchmarks``. Function-level imports count: a
deferred import is still an import.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("contract", "mobility", "expectations", "transforms", "reporting", "portal", "jobs", "benchmarks")
FORBIDDEN = {
    "contract": ("mobility", "expectations", "transforms", "jobs", "benchmarks"),
    "mobility": ("transforms", "jobs", "benchmarks", "reporting", "portal"),
    "expectations": ("transforms", "jobs", "benchmarks", "reporting", "portal"),
    "transforms": ("jobs", "benchmarks", "reporting", "portal"),
    "reporting": ("jobs", "benchmarks", "portal"),
    "portal": ("jobs", "benchmarks", "reporting", "transforms"),
    "jobs": ("benchmarks",),
}


def project_modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            mods[".".join(f.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")] = f
    return mods


def imports_of(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (module level or inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        for name in names:
            while name and name not in known:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def graph() -> dict[str, set[str]]:
    mods = project_modules()
    return {m: imports_of(f, set(mods)) - {m} for m, f in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
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

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def upward(g: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} -> {d}" for m, deps in g.items() for d in deps
                  if d.split(".")[0] in FORBIDDEN.get(m.split(".")[0], ()))


def test_the_checker_finds_cycles_and_upward_imports():
    g = {"contract.a": {"mobility.b"}, "mobility.b": {"mobility.c"}, "mobility.c": {"mobility.b"},
         "jobs.j": {"transforms.t"}, "transforms.t": set()}
    assert cycles(g) == [["mobility.b", "mobility.c"]]
    assert upward(g) == ["contract.a -> mobility.b"]


def test_no_import_cycle():
    g = graph()
    assert len(g) > 40  # every package was walked
    assert cycles(g) == []


def test_no_import_up_the_layers():
    assert upward(graph()) == []
