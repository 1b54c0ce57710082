"""Layers without cycles: the package's import graph, read from the source with ``ast``
(every import, at module level and inside functions; ``from . import x`` resolved to the
module ``x`` where it is one), has no cycle, and no module imports a higher layer.

The layers, lowest first (``LAYERS``): a module may import its own layer and those below.
``errors.py`` (and the package's ``__init__``) import nothing of the package. Heavy optional
libraries (ultralytics, tensorrt, torch, onnx, pycuda) are still imported inside the
functions that need them: only imports of this package are checked here.

A new upward import fails ``test_no_upward_import`` naming the file, the line and both
layers; a new cycle fails ``test_no_cycle`` naming the modules around it. The checker is
itself checked on a synthetic graph and on a small package written to a temporary folder.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = "trt_ray_bench"

#: lowest first; a layer may import itself and the layers before it. ``control.doctor``'s
#: backend lines are ``engines.backend_lines`` (control stays below engines); the images a
#: model is fed are ``models._inputs`` (models stay below engines); ``engines.resolve_model``
#: asks the backend what ``models.resolve_onnx`` needs.
LAYERS: Sequence[Sequence[str]] = (
    # the ground floor; the package's own name means its __init__ only (a new top-level
    # module must be placed here by name)
    (PKG, f"{PKG}.errors", f"{PKG}.interrupt", f"{PKG}.progress", f"{PKG}._atomic"),
    (f"{PKG}.spec",),  # the spec: pydantic models of what a user writes
    (f"{PKG}.timing",),  # the loop and its statistics: no Ray, no GPU
    (f"{PKG}.telemetry",),  # samplers
    (f"{PKG}.control",),  # the machine: platform, GPUs, clocks, MPS, doctor
    (f"{PKG}.models",),  # model files: export, conversion, inputs
    (f"{PKG}.engines",),  # backends: load, run, prepare
    (f"{PKG}.validation",),  # data sets and metrics
    (f"{PKG}.results",),  # schemas, Parquet, pandas, comparisons
    (f"{PKG}.cluster",),  # Ray: actors, plans, runs, sweeps
    (f"{PKG}.report",),  # pages of results
    (f"{PKG}.cli", f"{PKG}._terminal", f"{PKG}._completion"),  # trb, its tables, its shell completion
)


class Edge(NamedTuple):
    source: str
    target: str
    line: int
    local: bool  # inside a function


def module_names(root: Path, package: str) -> Dict[str, Path]:
    """Every module of ``package`` (its folder ``root / package``): dotted name -> file."""
    out = {}
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _ancestors(name: str) -> List[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def imports_of(name: str, path: Path, modules: Dict[str, Path], package: str) -> List[Edge]:
    """The modules of ``package`` that ``name`` imports, each with its line and whether the
    import is inside a function. ``from .x import y`` is an edge to ``x`` (or to ``x.y``
    where that is a module); importing ``a.b.c`` also runs ``a.b``'s ``__init__``, an
    edge too unless ``a.b`` is a package around ``name`` (being initialised already)."""
    tree = ast.parse(path.read_text(), str(path))
    is_pkg = path.name == "__init__.py"
    local_nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            local_nodes.update(id(n) for n in ast.walk(node) if isinstance(n, (ast.Import, ast.ImportFrom)))
    own = set(_ancestors(name)) | ({name} if is_pkg else set())
    edges: List[Edge] = []

    def add(target: str, node) -> None:
        if not (target == package or target.startswith(package + ".")):
            return
        while target not in modules and "." in target:  # a name imported from a module
            target = target.rsplit(".", 1)[0]
        for t in _ancestors(target) + [target]:
            if t in modules and t not in own and t != name:
                edges.append(Edge(name, t, node.lineno, id(node) in local_nodes))

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            for alias in node.names:
                sub = f"{mod}.{alias.name}"
                add(sub if sub in modules else mod, node)
    return edges


def import_graph(root: Path = ROOT, package: str = PKG) -> List[Edge]:
    modules = module_names(root, package)
    return [e for name, path in modules.items() for e in imports_of(name, path, modules, package)]


def find_cycle(edges: Sequence[Edge]) -> Optional[List[str]]:
    """One cycle of the graph as ``[a, b, ..., a]``, or None."""
    graph: Dict[str, List[str]] = {}
    for e in edges:
        graph.setdefault(e.source, []).append(e.target)
    state: Dict[str, int] = {}  # 1: on the path, 2: done
    path: List[str] = []

    def visit(v: str) -> Optional[List[str]]:
        state[v] = 1
        path.append(v)
        for w in sorted(set(graph.get(v, ()))):
            if state.get(w) == 1:
                return path[path.index(w):] + [w]
            if w not in state:
                found = visit(w)
                if found:
                    return found
        path.pop()
        state[v] = 2
        return None

    for v in sorted(graph):
        if v not in state:
            found = visit(v)
            if found:
                return found
    return None


def layer_of(module: str, layers: Sequence[Sequence[str]] = LAYERS) -> int:
    """The index of the layer that holds ``module``: the longest name declared that is the
    module or a package around it (a name without a dot, the root, is only itself)."""
    best, where = -1, None
    for i, names in enumerate(layers):
        for n in names:
            if (module == n or ("." in n and module.startswith(n + "."))) and len(n) > best:
                best, where = len(n), i
    if where is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layers.py")
    return where


def upward(edges: Sequence[Edge], layers: Sequence[Sequence[str]] = LAYERS) -> List[str]:
    """Every import of a higher layer, in words."""
    bad = []
    for e in edges:
        a, b = layer_of(e.source, layers), layer_of(e.target, layers)
        if b > a:
            where = " (inside a function)" if e.local else ""
            bad.append(f"{e.source} line {e.line} imports {e.target}{where}: layer {a} "
                       f"({layers[a][0]}) may not import layer {b} ({layers[b][0]})")
    return bad


# ------------------------------------------------------------------ the package itself


@pytest.fixture(scope="module")
def edges() -> List[Edge]:
    return import_graph()


def test_every_module_is_in_a_layer(edges):
    for name in module_names(ROOT, PKG):
        layer_of(name)


def test_no_cycle(edges):
    assert find_cycle(edges) is None, " -> ".join(find_cycle(edges))


def test_no_upward_import(edges):
    bad = upward(edges)
    assert not bad, "\n".join(bad)


def test_the_ground_floor_imports_nothing_of_the_package(edges):
    """``errors.py`` is imported by every module: it imports none (it did once import
    ``control.platform``, which made every module part of one cycle)."""
    assert [e for e in edges if e.source in (f"{PKG}.errors", PKG)] == []
    tree = ast.parse((ROOT / PKG / "errors.py").read_text())
    named = [n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.level or (n.module or "").startswith(PKG))]
    assert named == []


def test_results_compare_and_explain_do_not_import_each_other(edges):
    pairs = {(e.source, e.target) for e in edges}
    r = f"{PKG}.results."
    assert (r + "compare", r + "explain") not in pairs and (r + "explain", r + "compare") not in pairs
    assert [e for e in edges if e.source == r + "load" and e.local] == []  # no longer dodging a cycle


def test_no_module_pair_imports_each_other(edges):
    pairs = {(e.source, e.target) for e in edges}
    assert sorted((a, b) for a, b in pairs if (b, a) in pairs and a < b) == []


# ------------------------------------------------------------------ the checker, checked


def test_the_checker_finds_an_upward_import_and_a_cycle_in_a_synthetic_graph():
    layers = (("p.low",), ("p.mid",), ("p.high",))
    fine = [Edge("p.high.a", "p.mid.b", 1, False), Edge("p.mid.b", "p.low.c", 2, True)]
    assert upward(fine, layers) == [] and find_cycle(fine) is None
    up = fine + [Edge("p.low.c", "p.high.a", 7, True)]
    assert upward(up, layers) == ["p.low.c line 7 imports p.high.a (inside a function): layer 0 (p.low) may not "
                                  "import layer 2 (p.high)"]
    assert find_cycle(up) == ["p.high.a", "p.mid.b", "p.low.c", "p.high.a"]
    same_layer = fine + [Edge("p.mid.x", "p.mid.y", 1, False), Edge("p.mid.y", "p.mid.x", 3, True)]
    assert upward(same_layer, layers) == [] and find_cycle(same_layer) == ["p.mid.x", "p.mid.y", "p.mid.x"]
    with pytest.raises(AssertionError, match="p.nowhere is in no layer"):
        upward([Edge("p.nowhere", "p.low.c", 1, False)], layers)


def test_the_checker_reads_real_files(tmp_path):
    """A package on disk with the ways an import hides: a function-local one, ``from . import
    x`` (a module), ``from ..x import y`` (a name), an absolute one, and a package whose
    ``__init__`` a submodule import runs."""
    pkg = tmp_path / "p"
    for d in ("low", "high"):
        (pkg / d).mkdir(parents=True)
        (pkg / d / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("class E(Exception):\n    pass\n")
    (pkg / "low" / "base.py").write_text("from ..errors import E\n\n\ndef f():\n    from ..high import top\n")
    (pkg / "low" / "other.py").write_text("from . import base\n")
    (pkg / "high" / "__init__.py").write_text("from .top import g\n")
    (pkg / "high" / "top.py").write_text("import p.low.other\nfrom p.low.base import f as g\n")
    layers = (("p", "p.errors"), ("p.low",), ("p.high",))
    edges = import_graph(tmp_path, "p")
    assert {(e.source, e.target, e.line, e.local) for e in edges} == {
        ("p.low.base", "p.errors", 1, False),
        ("p.low.base", "p.high", 5, True), ("p.low.base", "p.high.top", 5, True),  # `from ..high import top`
        ("p.low.other", "p.low.base", 1, False),
        ("p.high", "p.high.top", 1, False),
        ("p.high.top", "p.low", 1, False), ("p.high.top", "p.low.other", 1, False),
        ("p.high.top", "p.low", 2, False), ("p.high.top", "p.low.base", 2, False),
    }
    assert upward(edges, layers) == [
        "p.low.base line 5 imports p.high (inside a function): layer 1 (p.low) may not import layer 2 (p.high)",
        "p.low.base line 5 imports p.high.top (inside a function): layer 1 (p.low) may not import layer 2 (p.high)"]
    assert find_cycle(edges) == ["p.high", "p.high.top", "p.low.base", "p.high"]
    (pkg / "low" / "base.py").write_text("from ..errors import E\n")  # the upward import removed: all clear
    edges = import_graph(tmp_path, "p")
    assert upward(edges, layers) == [] and find_cycle(edges) is None


def test_a_model_process_imports_no_table_library():
    """Every actor of a run is a new process that imports ``cluster.actors`` (Ray sends the
    class by reference): it must not pull in the driver's table and plotting libraries,
    which cost each model's process most of a second on a board's CPU (``cluster`` names
    its driver functions lazily)."""
    import subprocess
    import sys

    heavy = ("pandas", "pyarrow", "matplotlib", "scipy", "torch", "ultralytics", "tensorrt")
    code = ("import sys, trt_ray_bench.cluster.actors; "
            f"print(' '.join(m for m in {heavy!r} if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == []
    from trt_ray_bench import cluster  # the driver's names are still there, on first use

    assert cluster.run_plan.__module__ == f"{PKG}.cluster.node_run" and callable(cluster.make_plan)
    with pytest.raises(AttributeError):
        cluster.no_such_name  # noqa: B018
