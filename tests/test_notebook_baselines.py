"""notebooks/baselines.ipynb: valid nbformat 4, resolving imports, every method
in its table; the full execution (a few minutes on 2 cores) is marked slow."""

import ast
import json
import pathlib
import re

import pytest

from test_notebook import MAX_OUTPUT_BYTES, cell_source, execute_notebook, strip_magics

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "baselines.ipynb"
NAMES = ("ssl", "supervised", "fixed late", "fixed aoa", "surrogate", "randomnet")


def _cells():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)["cells"]


def _code():
    return [cell_source(c) for c in _cells() if c["cell_type"] == "code"]


def test_notebook_is_valid_and_small():
    nbformat = pytest.importorskip("nbformat")
    nbformat.validate(nbformat.reads(NOTEBOOK.read_text(encoding="utf-8"), as_version=4))
    for cell in _cells():
        for output in cell.get("outputs", []):
            assert len(json.dumps(output)) < MAX_OUTPUT_BYTES


def test_cells_compile_and_imports_resolve():
    import importlib
    for i, source in enumerate(_code()):
        tree = ast.parse(strip_magics(source), filename=f"<cell {i}>")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("ssnas_tf"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"cell {i}: {alias.name}"


def test_every_method_is_run():
    from ssnas_tf.workflow.config import METHODS
    code = "\n".join(_code())
    for method in METHODS:
        assert f'method="{method}"' in code, method
    for name in NAMES:
        assert f'("{name}", ' in code, name


@pytest.mark.slow
def test_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("SSNAS_NOTEBOOK_CI", "1")  # CI settings: capped steps, 3 views
    notebook = execute_notebook(NOTEBOOK, tmp_path, monkeypatch)
    text = "\n".join(o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")
    # one table row per method, with F1 and accuracy in [0, 1]
    for name in NAMES:
        row = re.search(rf"^{re.escape(name)}\s+(\d\.\d{{4}})\s+(\d\.\d{{4}})\s+\d+\.\d$",
                        text, re.MULTILINE)
        assert row, f"no table row for {name}:\n{text[-2000:]}"
        assert 0 <= float(row.group(1)) <= 1 and 0 <= float(row.group(2)) <= 1
        results = json.loads((tmp_path / "runs" / f"baselines-{name.replace(' ', '-')}"
                              / "results.json").read_text())
        assert f"{results['weighted_f1']:.4f}" == row.group(1)
    assert "fusion:" in text
