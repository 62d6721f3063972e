"""The package's layers, checked statically: ast over every module of ssnas_tf,
imports inside functions included (a lazy import is still a dependency).

Layers, lowest first (docs/architecture.md): the leaf modules at the package
top (errors, seeds, devices, modalities, ...), then `ssl`, then `data` and
`nas`, then `backbones`, then `tuners`, `serving` and `viz`, then `workflow`,
then `cli`. A module may import its own package and any lower layer, never a
higher one or a sibling of its own rank; and no modules import each other in a
circle.
"""

import ast
import os

import pytest

PACKAGE = "ssnas_tf"
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)
RANKS = {"leaf": 0, "ssl": 1, "data": 2, "nas": 2, "backbones": 3, "tuners": 4,
         "serving": 4, "viz": 4, "workflow": 5, "cli": 6, "__main__": 6}
MAX_LINES = 500
LONG_MODULE_MARK = "Length:"  # a module over MAX_LINES says why at its top


def _modules():
    """{dotted name: path} of every module of the package."""
    out = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3]
                dotted = rel.replace(os.sep, ".")
                out[dotted[:-len(".__init__")] if dotted.endswith(".__init__") else dotted] = path
    return out


MODULES = _modules()


def _imports(name, path):
    """The package's modules that `name` imports, anywhere in its code."""
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")[:len(name.split(".")) - node.level + is_package]
                module = ".".join(parts + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import sub` imports the submodule when there is one.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t in MODULES and t != name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _layer(module):
    """The layer of a module: its subpackage, "cli", or "leaf" for the other
    top-level modules; None for the package's own __init__."""
    parts = module.split(".")
    if len(parts) == 1:
        return None
    if len(parts) == 2 and parts[1] not in RANKS:
        return "leaf" if not os.path.isdir(os.path.join(ROOT, parts[1])) else parts[1]
    return parts[1]


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                found.append(sorted(component))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_scan_sees_lazy_and_relative_imports():
    # The scan must catch what it is meant to: imports inside functions.
    assert "ssnas_tf.workflow.baselines" in GRAPH["ssnas_tf.cli"]  # inside main()
    assert len(MODULES) > 50


def test_no_import_circle():
    assert _cycles(GRAPH) == []


def test_cycle_finder_finds_a_circle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_has_a_layer():
    unknown = {m: _layer(m) for m in MODULES if m != PACKAGE and _layer(m) not in RANKS}
    assert unknown == {}


def test_no_import_runs_up_the_layers():
    upward = []
    for module, targets in GRAPH.items():
        layer = _layer(module)
        for target in targets:
            other = _layer(target)
            if layer is None or other is None or other == layer:
                continue
            if RANKS[other] >= RANKS[layer] and not (layer == other == "leaf"):
                upward.append(f"{module} ({layer}) imports {target} ({other})")
    assert upward == []


def test_leaf_modules_import_only_leaf_modules():
    bad = [(m, t) for m, targets in GRAPH.items() if _layer(m) == "leaf"
           for t in targets if _layer(t) != "leaf"]
    assert bad == []


@pytest.mark.parametrize("lower", ["data", "nas", "ssl", "backbones", "tuners"])
def test_lower_packages_never_import_workflow(lower):
    bad = [(m, t) for m, targets in GRAPH.items() if _layer(m) == lower
           for t in targets if _layer(t) == "workflow"]
    assert bad == []


def test_long_modules_state_why():
    long = []
    for module, path in MODULES.items():
        with open(path) as f:
            text = f.read()
        if text.count("\n") > MAX_LINES:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if LONG_MODULE_MARK not in doc:
                long.append(f"{module}: {text.count(chr(10))} lines")
    assert long == [], (f"modules over {MAX_LINES} lines need a '{LONG_MODULE_MARK}' "
                        f"paragraph in their docstring saying why")
