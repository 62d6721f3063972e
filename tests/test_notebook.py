"""notebooks/quickstart.ipynb: valid nbformat 4, compiling cells, existing APIs.

The fast tests read the notebook as JSON and never run it. The full execution
(with CI's tiny settings) is marked slow and needs nbclient, nbformat and
ipykernel, which are not dependencies of the package: `pip install nbclient
nbformat ipykernel && python -m pytest -m slow tests/test_notebook.py`.
"""

import ast
import dataclasses
import importlib
import json
import os
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "quickstart.ipynb"
MAX_OUTPUT_BYTES = 100_000  # per output; the notebook is kept without images


def load_notebook():
    with open(NOTEBOOK, encoding="utf-8") as f:
        return json.load(f)


def cell_source(cell):
    source = cell["source"]
    return source if isinstance(source, str) else "".join(source)


def code_cells():
    return [(i, cell_source(cell)) for i, cell in enumerate(load_notebook()["cells"])
            if cell["cell_type"] == "code"]


def strip_magics(source):
    """Python source of a cell: IPython shell (`!`) and magic (`%`) lines become `pass`.

    A cell magic (`%%...` on the first line) makes the whole cell non-Python.
    """
    if source.lstrip().startswith("%%"):
        return ""
    lines = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            line = line[:len(line) - len(stripped)] + "pass"
        lines.append(line)
    return "\n".join(lines) + "\n"


def parsed_cells():
    return [(i, ast.parse(strip_magics(source), filename=f"<cell {i}>"))
            for i, source in code_cells()]


def all_code():
    return "\n".join(source for _, source in code_cells())


def test_notebook_is_valid_nbformat4_json():
    notebook = load_notebook()
    assert notebook["nbformat"] == 4
    assert isinstance(notebook["nbformat_minor"], int)
    kernelspec = notebook["metadata"]["kernelspec"]
    assert kernelspec["name"] == "python3" and kernelspec["language"] == "python"
    assert notebook["cells"], "the notebook has no cells"
    kinds = {cell["cell_type"] for cell in notebook["cells"]}
    assert kinds <= {"markdown", "code", "raw"}
    assert {"markdown", "code"} <= kinds
    for cell in notebook["cells"]:
        assert isinstance(cell["metadata"], dict)
        source = cell["source"]
        assert isinstance(source, str) or all(isinstance(s, str) for s in source)
        if cell["cell_type"] == "code":
            assert isinstance(cell["outputs"], list)
            assert "execution_count" in cell
    try:
        import nbformat
    except ImportError:
        return
    nbformat.validate(nbformat.reads(NOTEBOOK.read_text(encoding="utf-8"), as_version=4))


def test_outputs_are_small():
    for cell in load_notebook()["cells"]:
        for output in cell.get("outputs", []):
            size = len(json.dumps(output))
            assert size < MAX_OUTPUT_BYTES, f"an output of {size} bytes: clear the outputs"


def test_every_code_cell_compiles():
    for i, source in code_cells():
        compile(strip_magics(source), f"<notebook cell {i}>", "exec")


def test_strip_magics():
    source = "x = 1\n!pip install -q foo\nif x:\n    %time y = 2\n# !pip install bar\n"
    stripped = strip_magics(source)
    assert "!pip" not in stripped.replace("# !pip", "")
    compile(stripped, "<test>", "exec")
    assert strip_magics("%%bash\necho hi\n") == ""


def test_ssnas_imports_exist():
    """Every `from ssnas_tf... import X` and `import ssnas_tf...` in the cells resolves."""
    checked = 0
    for i, tree in parsed_cells():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ssnas_tf":
                module = importlib.import_module(node.module)
                for alias in node.names:
                    assert hasattr(module, alias.name), (
                        f"cell {i}: `from {node.module} import {alias.name}`: no such name")
                    checked += 1
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "ssnas_tf":
                        importlib.import_module(alias.name)
                        checked += 1
    assert checked >= 10, f"only {checked} ssnas_tf imports found in the notebook"


def test_ssnas_tf_attributes_exist():
    """`ssnas_tf.<name>` attribute accesses in the cells exist."""
    import ssnas_tf
    for i, tree in parsed_cells():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id == "ssnas_tf"):
                assert hasattr(ssnas_tf, node.attr), f"cell {i}: ssnas_tf.{node.attr}"


def test_run_config_keywords_exist():
    """Keywords given to RunConfig(...) and .replace(...), directly or via **dict(...)."""
    from ssnas_tf import RunConfig
    fields = {f.name for f in dataclasses.fields(RunConfig)}
    dicts = {}
    for _, tree in parsed_cells():
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Name) and node.value.func.id == "dict"):
                dicts[node.targets[0].id] = [k.arg for k in node.value.keywords if k.arg]
    used = []
    for i, tree in parsed_cells():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            is_config = isinstance(func, ast.Name) and func.id == "RunConfig"
            is_replace = (isinstance(func, ast.Attribute) and func.attr == "replace"
                          and isinstance(func.value, ast.Name) and "config" in func.value.id)
            if not (is_config or is_replace):
                continue
            for keyword in node.keywords:
                if keyword.arg is not None:
                    used.append((i, keyword.arg))
                elif isinstance(keyword.value, ast.Name) and keyword.value.id in dicts:
                    used += [(i, name) for name in dicts[keyword.value.id]]
    assert used, "no RunConfig(...) call found"
    unknown = [(i, name) for i, name in used if name not in fields]
    assert not unknown, f"RunConfig has no fields {unknown} (cell, keyword)"


def test_notebook_covers_the_walkthrough():
    code = all_code()
    for needle in ("pip install", "run_all(", "weighted_f1", "genotype_summary(",
                   "Image(filename=", "search_log.jsonl", 'method="supervised"',
                   "SearchNetwork(", "SearchModel(", "ProjectionHead(",
                   "reference_optimizers(", "view_pairs(", "Dataset.zip(",
                   "derive_genotype(", "DerivedNetwork(", "vgg19_taps(", "tap_model(",
                   "tf.saved_model.load(", "serving_default"):
        assert needle in code, f"the notebook no longer uses {needle!r}"
    # The ImageNet download stays opt-in.
    assert re.search(r"^USE_IMAGENET = False\b", code, re.MULTILINE)
    assert 'weights="imagenet" if USE_IMAGENET else None' in code
    # The optional plot must not make matplotlib a dependency.
    assert "except ImportError" in code
    text = "\n".join(cell_source(c) for c in load_notebook()["cells"]
                     if c["cell_type"] == "markdown")
    assert "docker run" in text and "curl" in text
    assert "anecdotal" in text


def execute_notebook(path, workdir, monkeypatch):
    """Runs a notebook in a fresh kernel with `workdir` as its folder; returns it
    with its outputs. Raises CellExecutionError on the first failing cell.

    nbformat, nbclient and ipykernel come with the test extra: a missing one is
    an error, not a skip, so CI cannot pass without running the notebooks.
    """
    import nbclient
    import nbformat
    # The kernel inherits the environment: make the checkout importable.
    python_path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", str(ROOT) + (os.pathsep + python_path if python_path else ""))
    notebook = nbformat.read(str(path), as_version=4)
    nbclient.NotebookClient(notebook, timeout=1200, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}}).execute()
    return notebook


@pytest.mark.slow
def test_notebook_executes(tmp_path, monkeypatch):
    """Runs the whole notebook in a fresh kernel, in a scratch folder, with
    its CI settings (`SSNAS_NOTEBOOK_CI=1`: tiny epochs and widths)."""
    monkeypatch.setenv("SSNAS_NOTEBOOK_CI", "1")
    notebook = execute_notebook(NOTEBOOK, tmp_path, monkeypatch)

    text = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            text.append(output.get("text", "") if output.get("output_type") == "stream"
                        else output.get("data", {}).get("text/plain", ""))
    text = "\n".join(text)
    assert re.search(r"weighted F1 \d\.\d{4}", text)
    assert "supervised BM-NAS (baseline): weighted F1" in text
    assert "predicted:" in text
    run_dir = tmp_path / "runs" / "quickstart-ssl-s0"
    results = json.loads((run_dir / "results.json").read_text())
    assert 0.0 <= results["weighted_f1"] <= 1.0
    assert (run_dir / "architecture.png").exists()
