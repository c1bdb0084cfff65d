"""The package's shape, checked: no import cycles, no arrow back up the layers, small files, one op contract
that every backend keeps, old module paths that still import (with a warning naming the new one)."""

import ast
import importlib
import inspect
import subprocess
import sys
import warnings

import conftest
import pytest

import minivivit
from minivivit import _moved
from minivivit.kernels import BACKENDS, OPS, get_backend

PACKAGE = conftest.ROOT / "minivivit"
MAX_LINES = 400


def module_name(path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str) -> set[str]:
    """Every minivivit module that module `name` imports, at the top or inside functions (lazy imports count:
    a cycle through a lazy import is still a cycle in the design)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # `from pkg import x` imports the submodule pkg.x when there is one, else an attribute of pkg
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def test_no_import_cycles():
    """Tarjan's strongly connected components over the import graph: every component has one module."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):
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
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


# lower layers may not import these (the arrows only run down: kernels -> layers, model -> kernels, ...)
FORBIDDEN = {
    "minivivit.layers": ("minivivit.model", "minivivit.kernels", "minivivit.debug", "minivivit.explain"),
    "minivivit.tokens": ("minivivit.model", "minivivit.kernels", "minivivit.debug", "minivivit.explain"),
    "minivivit.config": ("minivivit.model", "minivivit.kernels", "minivivit.weights"),
    "minivivit.kernels": ("minivivit.model", "minivivit.debug", "minivivit.explain", "minivivit.video",
                          "minivivit.commands", "minivivit.checkpoint"),
    "minivivit.model": ("minivivit.debug", "minivivit.explain", "minivivit.video", "minivivit.commands",
                        "minivivit.checkpoint", "minivivit.convert"),
}


@pytest.mark.parametrize("lower", sorted(FORBIDDEN))
def test_no_arrow_runs_back_up(lower):
    offenders = {(m, t) for m, targets in GRAPH.items() if m == lower or m.startswith(lower + ".")
                 for t in targets if any(t == f or t.startswith(f + ".") for f in FORBIDDEN[lower])}
    assert not offenders, f"{lower} must not import {FORBIDDEN[lower]}; found {sorted(offenders)}"


def test_no_file_over_the_limit():
    long = {str(p.relative_to(PACKAGE.parent)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines (split them by idea): {long}"


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_every_backend_provides_exactly_the_op_contract(backend):
    ops = get_backend(backend)
    missing = [op for op in OPS if not callable(getattr(ops, op, None))]
    assert not missing, f"backend {backend!r} lacks the ops {missing}"
    assert not hasattr(ops, "forward"), "a backend provides ops, never a forward pass of its own"


def test_cuda_backend_module_provides_the_op_contract():
    """Read from the source (numba-cuda may not import here): every op is defined in kernels/cuda/__init__.py."""
    tree = ast.parse((PACKAGE / "kernels" / "cuda" / "__init__.py").read_text())
    defined = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert set(OPS) <= defined and "forward" not in defined


def test_numpy_backend_is_the_reference_itself():
    assert get_backend("numpy") is minivivit.layers


@pytest.mark.parametrize("old, new", sorted(_moved.MOVED.items()))
def test_old_module_paths_still_import_with_a_warning(old, new):
    if "cuda" in old:
        pytest.importorskip("numba.cuda")
    code = (f"import warnings; warnings.simplefilter('always'); import importlib, minivivit\n"
            f"with warnings.catch_warnings(record=True) as w:\n"
            f"    warnings.simplefilter('always')\n"
            f"    old = importlib.import_module({old!r})\n"
            f"assert old is importlib.import_module({new!r}), 'not the same module'\n"
            f"assert any({new!r} in str(x.message) for x in w), [str(x.message) for x in w]\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)  # a fresh import each time
    assert r.returncode == 0, r.stderr[-2000:]


def test_removed_module_says_what_replaced_it():
    with pytest.raises(ImportError, match="op by op"):
        importlib.import_module("minivivit.kernels.cuda_forward")


def test_old_preprocess_module_path_keeps_the_function():
    """`minivivit.preprocess` is the function; importing the old module path must not replace it."""
    import minivivit.preprocess as old_module  # noqa: F401

    assert callable(minivivit.preprocess) and inspect.isfunction(minivivit.preprocess)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from minivivit.preprocess import preprocess_for  # noqa: F401


def test_cli_backend_choices_come_from_the_backend_list():
    from minivivit.cli import build_parser

    parser, _ = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for command in ("demo", "classify", "attention"):
        backend = next(a for a in sub[command]._actions if a.dest == "backend")
        assert list(backend.choices) == list(BACKENDS), command
