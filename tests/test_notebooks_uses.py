"""The notebooks for each use: own_data, label_fraction, serving.

Fast: valid nbformat 4, a Colab badge first, the install cell, compiling cells
whose `ssnas_tf` imports resolve. Slow: each runs top to bottom in a fresh
kernel with the CI settings (`SSNAS_NOTEBOOK_CI=1`: tiny epochs and steps),
within the 3 minutes CI allows a notebook.
"""

import ast
import importlib
import json
import pathlib
import time

import pytest

from test_notebook import cell_source, execute_notebook, strip_magics

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = ("own_data", "label_fraction", "serving")
CI_SECONDS = 180  # the budget of one notebook at CI settings on 2 CPU cores


def _cells(name):
    with open(ROOT / "notebooks" / f"{name}.ipynb", encoding="utf-8") as f:
        return json.load(f)["cells"]


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_badge_install_and_imports(name):
    nbformat = pytest.importorskip("nbformat")
    path = ROOT / "notebooks" / f"{name}.ipynb"
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    cells = _cells(name)
    assert cells[0]["cell_type"] == "markdown"
    assert f"colab.research.google.com/github/" in cell_source(cells[0])
    assert f"notebooks/{name}.ipynb" in cell_source(cells[0])
    install = cell_source(cells[1])
    assert 'find_spec("ssnas_tf") is None' in install and "pip" in install
    assert "SSNAS_NOTEBOOK_CI" in "".join(cell_source(c) for c in cells)
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        assert not cell["outputs"], f"{name} cell {i}: committed with outputs"
        tree = ast.parse(strip_magics(cell_source(cell)), filename=f"<{name} cell {i}>")
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module.startswith("ssnas_tf"):
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), f"{name} cell {i}: {alias.name}"


def _text(notebook):
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") if output.get("output_type") == "stream"
                         else output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def _execute(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SSNAS_NOTEBOOK_CI", "1")
    start = time.perf_counter()
    notebook = execute_notebook(ROOT / "notebooks" / f"{name}.ipynb", tmp_path, monkeypatch)
    seconds = time.perf_counter() - start
    print(f"{name}.ipynb: {seconds:.0f} s at CI settings")
    assert seconds < CI_SECONDS, f"{name}.ipynb took {seconds:.0f} s at CI settings"
    return _text(notebook)


@pytest.mark.slow
def test_own_data_executes(tmp_path, monkeypatch):
    text = _execute("own_data", tmp_path, monkeypatch)
    assert "CI (tiny) settings" in text and "weighted F1" in text
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "id,predicted,p_circle,p_square,p_triangle" and len(rows) == 31
    assert (tmp_path / "runs" / "own-data" / "architecture.png").exists()


@pytest.mark.slow
def test_label_fraction_executes(tmp_path, monkeypatch):
    text = _execute("label_fraction", tmp_path, monkeypatch)
    assert "4 trials" in text
    assert (tmp_path / "runs" / "label-fraction" / "label_fraction.png").exists()


@pytest.mark.slow
def test_serving_executes(tmp_path, monkeypatch):
    text = _execute("serving", tmp_path, monkeypatch)
    request = json.loads((tmp_path / "request.json").read_text())
    assert len(request["instances"]) == 3
    assert '"predictions": [' in text and '"probabilities": [' in text
    assert "metrics against the npz's labels: {'weighted_f1'" in text
