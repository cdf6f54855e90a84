"""The layering the architecture promises, read from the source with ``ast`` (nothing is imported):

* ``geometry`` (the engine) never imports ``app`` or ``experiments``;
* ``experiments`` (sweeps and tasks on Dask) never imports ``app``;
* the Qt-free model, jobs, renderers and exporters (``app.model``, ``app.jobs``, ``app.render``,
  ``app.export``) never import ``app.qt``, ``app.cli`` or a Qt/GUI library;
* ``app.qt`` (widgets) never imports ``app.cli`` (commands);
* no module imports itself through others: there is no import cycle, counting imports inside functions
  too (a lazy import that closes a circle is still a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("geometry", "experiments", "app")
GUI = ("PySide6", "pyqtgraph", "vispy", "superqt", "OpenGL")
QT_FREE = ("app.model", "app.jobs", "app.render", "app.export")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved (``from . import x`` counts as ``pkg.x``)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for a in node.names:  # "from pkg import module" imports pkg.module; "from mod import name", mod
                sub = f"{mod}.{a.name}"
                out.add(sub if _is_module(sub) else mod)
    return out


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    modules = {_module_name(p): p for p in files}
    graph = {}
    for mod, path in modules.items():
        graph[mod] = {m for m in _imports(path) if m in modules and m != mod}
    return graph


GRAPH = _graph()


def _within(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


def _all_imports(mod: str) -> set[str]:
    return (
        _imports(ROOT / Path(*mod.split(".")).with_suffix(".py"))
        if (ROOT / Path(*mod.split(".")).with_suffix(".py")).exists()
        else _imports(ROOT / Path(*mod.split(".")) / "__init__.py")
    )


def test_the_engine_never_imports_the_app():
    bad = {m: sorted(i for i in _all_imports(m) if _within(i, "app") or _within(i, "experiments")) for m in GRAPH if _within(m, "geometry")}
    assert not {m: v for m, v in bad.items() if v}


def test_experiments_never_import_the_app_and_the_engine_never_imports_dask():
    bad = {m: sorted(i for i in _all_imports(m) if _within(i, "app")) for m in GRAPH if _within(m, "experiments")}
    assert not {m: v for m, v in bad.items() if v}
    dask = {m: sorted(i for i in _all_imports(m) if _within(i, "dask") or _within(i, "distributed")) for m in GRAPH if _within(m, "geometry")}
    assert not {m: v for m, v in dask.items() if v}


def test_model_jobs_render_and_export_are_qt_free_and_below_the_faces():
    bad = {}
    for m in GRAPH:
        if any(_within(m, p) for p in QT_FREE):
            wrong = sorted(i for i in _all_imports(m) if _within(i, "app.qt") or _within(i, "app.cli") or any(_within(i, g) for g in GUI))
            if wrong:
                bad[m] = wrong
    assert not bad


def test_widgets_never_import_commands():
    bad = {m: sorted(i for i in GRAPH[m] if _within(i, "app.cli")) for m in GRAPH if _within(m, "app.qt")}
    assert not {m: v for m, v in bad.items() if v}


def test_no_import_cycles():
    """Tarjan's strongly connected components of the module graph: every one must be a single module.
    A package's ``__init__`` re-exporting its own modules is not a cycle (its modules never import it)."""
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
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
                cycles.append(sorted(comp))

    import sys

    sys.setrecursionlimit(10_000)
    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_contract_checker_sees_a_violation(tmp_path):
    """The walk itself: a relative import of the app from inside the engine is found."""
    f = ROOT / "geometry" / "_contract_probe.py"
    try:
        f.write_text("from ..app.jobs import tessellate_all\nimport app.qt.main_window\n")
        got = _imports(f)
    finally:
        f.unlink()
    assert "app.jobs" in got and "app.qt.main_window" in got


def test_the_schema_and_the_spec_know_the_same_layer_types():
    """The schema reads its layer vocabulary from its own models (so it need not import the spec); the two
    lists must not drift apart."""
    from geometry.networks.schemas import _LAYER_TYPES
    from geometry.networks.spec import ALL_TYPES

    assert _LAYER_TYPES == frozenset(ALL_TYPES)


def test_the_public_names_resolve_and_the_stub_names_them_all():
    """Every lazy name of ``geometry`` imports from the module it names, and ``__init__.pyi`` (what type
    checkers read) declares exactly those names, each from that module."""
    import geometry

    stub = ast.parse((ROOT / "geometry" / "__init__.pyi").read_text())
    declared = {(n.module, a.name) for n in stub.body if isinstance(n, ast.ImportFrom) for a in n.names}
    assert declared == {(f"geometry.{m}", name) for m, names in geometry._EXPORTS.items() for name in names}
    for name in geometry.__all__:
        assert getattr(geometry, name) is not None
