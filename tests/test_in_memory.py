"""Data held in memory as a dataset: `as_dataset` (arrays, DataFrame, tf.data),
`Run(..., dataset=...)` on a dict of arrays, and the `npz` loader."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ssnas_tf import as_dataset
from ssnas_tf.data import DATASETS, MultimodalDataset, load_dataset
from ssnas_tf.errors import DataError

from tests.test_pipeline import TINY_FLAGS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _arrays(n=60, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    return {"photo": rng.integers(0, 256, (n, 6, 6, 3), dtype=np.uint8),
            "accel": rng.normal(size=(n, 5)),
            "tokens": rng.integers(0, 20, (n, 7)),
            "note": np.array([f"sample {i}" for i in range(n)]),
            "label": rng.integers(0, classes, n)}


def test_kinds_are_inferred_from_dtype_and_rank():
    data = as_dataset(_arrays(), name="mine")
    assert isinstance(data, MultimodalDataset) and data.name == "mine"
    assert data.kinds == {"photo": "image", "accel": "vector", "tokens": "sequence",
                          "note": "text"}
    assert data.inputs["accel"].dtype == np.float32
    assert data.inputs["tokens"].dtype == np.int32
    assert data.inputs["note"].dtype == object and data.inputs["note"][1] == "sample 1"
    assert data.label_names == ("0", "1", "2") and data.num_samples == 60


def test_explicit_kinds_labels_and_names():
    arrays = _arrays()
    labels = arrays.pop("label")
    arrays["mel"] = np.random.default_rng(1).random((60, 8, 4)).astype("float32")
    data = as_dataset(arrays, labels=labels, kinds={"mel": "spectrogram"},
                      label_names=["walk", "run", "sit"])
    assert data.kinds["mel"] == "spectrogram" and data.inputs["mel"].shape == (60, 8, 4, 1)
    assert data.label_names == ("walk", "run", "sit")
    # class names as labels, multi-hot labels
    names = as_dataset({"v": np.ones((4, 2)), "label": np.array(["b", "a", "b", "c"])})
    assert names.label_names == ("a", "b", "c") and names.labels.tolist() == [1, 0, 1, 2]
    multi = as_dataset({"v": np.ones((3, 2)), "labels": np.eye(3, dtype=int)})
    assert multi.multilabel and multi.num_classes == 3
    # a MultimodalDataset passes through unchanged
    assert as_dataset(data) is data


@pytest.mark.parametrize("arrays, message", [
    ({"v": np.ones((5, 2)), "label": np.arange(4)}, "array 'v' \\(shape \\(5, 2\\)\\) has 5 rows"),
    ({"v": np.ones((5, 2))}, "no labels"),
    ({"label": np.arange(5)}, "no modalities"),
    ({"v": np.array([[1.0, np.nan]] * 5), "label": np.arange(5)}, "'v'.*NaN"),
    ({"v": np.ones((5, 2, 2)), "label": np.arange(5)}, "'v' has dtype float64 and shape"),
    ({"d": np.array([None] * 5), "label": np.arange(5)}, "'d' has dtype object"),
    ({"img": np.full((5, 2, 2, 1), 3.0), "label": np.arange(5)}, "'img'.*\\[0, 1\\]"),
    ({"v": np.ones((5, 2)), "label": np.array([0, 1, -1, 0, 1])}, "negative class id"),
    ({"v": np.ones((5, 2)), "label": np.arange(5), "label_names": np.array(["a", "b"])},
     "class id 4 in labels but only 2"),
])
def test_bad_arrays_are_named(arrays, message):
    with pytest.raises(DataError, match=message):
        as_dataset(arrays)


def test_bad_kinds_are_named():
    with pytest.raises(DataError, match="kinds= names \\['nope'\\]"):
        as_dataset(_arrays(), kinds={"nope": "vector"})
    with pytest.raises(DataError, match="'accel'.*unknown kind"):
        as_dataset(_arrays(), kinds={"accel": "table"})
    with pytest.raises(DataError, match="'accel'.*text must be"):
        as_dataset(_arrays(), kinds={"accel": "text"})


def test_dataframe_columns():
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"height": [1.0, 2.0, 3.0, 4.0], "age": [3, 4, 5, 6],
                          "colour": ["red", "blue", "red", "green"],
                          "text": ["good", "bad", "ok", "fine"], "id": list("wxyz"),
                          "label": ["a", "b", "a", "b"]})
    data = as_dataset(frame)
    # `text` is text, every other column one `tabular` modality, `id` left out.
    assert data.kinds == {"text": "text", "tabular": "tabular"}
    assert data.inputs["tabular"][:, :2].tolist() == [[1, 3], [2, 4], [3, 5], [4, 6]]
    colour = data.inputs["tabular"][:, 2]
    assert colour[0] == colour[2] != colour[1] and 0 <= colour.min() <= colour.max() < 32
    assert [c["type"] for c in data.extras["tabular_columns"]] == [
        "numeric", "numeric", "categorical"]
    assert data.extras["tabular_strings"][:, 0].tolist() == ["red", "blue", "red", "green"]
    assert data.label_names == ("a", "b") and data.labels.tolist() == [0, 1, 0, 1]
    multi = as_dataset(pd.DataFrame({"x": [1.0, 2.0], "labels": ["a|b", "b"]}))
    assert multi.multilabel and multi.labels.tolist() == [[1, 1], [0, 1]]
    # A missing number is NaN (the backbone makes it 0 plus an indicator).
    missing = as_dataset(frame.assign(height=[1.0, None, 2.0, 3.0]))
    assert np.isnan(missing.inputs["tabular"][1, 0])
    with pytest.raises(DataError, match="column 'height'.*infinite"):
        as_dataset(frame.assign(height=[1.0, np.inf, 2.0, 3.0]))
    split = as_dataset(frame.assign(split=["train", "train", "valid", "test"]))
    assert split.splits["train"].tolist() == [0, 1] and "split" not in str(
        split.extras["tabular_columns"])
    with pytest.raises(DataError, match="column 'when' has dtype"):
        as_dataset(frame.assign(when=pd.to_datetime(["2020-01-01"] * 4)))


def test_tf_data_batched_or_not():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    features = {"v": rng.normal(size=(30, 3)).astype("float32"),
                "t": np.array([f"w{i}" for i in range(30)])}
    labels = rng.integers(0, 4, 30)
    pipeline = tf.data.Dataset.from_tensor_slices((features, labels))
    for dataset in (pipeline, pipeline.batch(7)):
        data = as_dataset(dataset)
        assert data.kinds == {"v": "vector", "t": "text"} and data.num_samples == 30
        np.testing.assert_array_equal(data.inputs["v"], features["v"])
        assert data.inputs["t"][3] == "w3" and data.labels.tolist() == labels.tolist()
    with pytest.raises(DataError, match="\\(features_dict, label\\)"):
        as_dataset(tf.data.Dataset.from_tensor_slices(features))
    with pytest.raises(DataError, match="never ends"):
        as_dataset(pipeline.repeat())


def test_npz_file_or_folder(tmp_path):
    assert "npz" in DATASETS
    arrays = _arrays()
    arrays["label_names"] = np.array(["x", "y", "z"])
    np.savez(tmp_path / "mine.npz", **arrays)
    for where in (tmp_path / "mine.npz", tmp_path):
        data = load_dataset("npz", data_dir=str(where))
        assert data.label_names == ("x", "y", "z") and data.num_samples == 60
        assert data.kinds["note"] == "text"
    with_kinds = load_dataset("npz", data_dir=str(tmp_path),
                              kinds={"tokens": "vector"})
    assert with_kinds.kinds["tokens"] == "vector"


@pytest.mark.parametrize("drop, change, message", [
    ("label", None, "no 'label' or 'labels' array"),
    (None, ("accel", np.ones((59, 5))), "array 'accel' \\(shape \\(59, 5\\)\\) has 59 rows"),
])
def test_bad_npz_exits_2_naming_the_array(tmp_path, capsys, drop, change, message):
    from ssnas_tf.cli import main
    arrays = _arrays()
    if drop:
        arrays.pop(drop)
    if change:
        arrays[change[0]] = change[1]
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataError, match=message):
        load_dataset("npz", data_dir=str(path))
    code = main(["run", "--dataset", "npz", "--data-dir", str(path),
                 "--output", str(tmp_path / "run"), *TINY_FLAGS])
    assert code == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and ("label" in err if drop else "'accel'" in err)


# Two modalities with class signal, 10 classes, 1,500 rows; a tiny run on them
# from a fresh process, then evaluate with the same and with other arrays.
PIPELINE = r"""
import json, sys
import numpy as np
from ssnas_tf import Run, RunConfig, RunError

def arrays(seed):
    rng = np.random.default_rng(seed)
    label = np.arange(1500) % 10
    image = rng.integers(0, 120, (1500, 8, 8, 1)).astype(np.uint8)
    image[np.arange(1500), label % 8, label // 8 * 4, 0] = 255
    vector = rng.normal(size=(1500, 12)).astype(np.float32)
    vector[np.arange(1500), label] += 3.0
    return {"image": image, "vector": vector, "label": label}

directory = sys.argv[1]
config = RunConfig(dataset="custom", backbone_epochs=1, search_epochs=1,
                   pretrain_epochs=1, finetune_epochs=1, batch_size=64,
                   finetune_batch_size=32, backbone_width=8, channels=8, length=4,
                   num_cells=2, num_steps=1, projection_dim=16, max_steps_per_epoch=4)
results = Run(directory, config, verbose=0, dataset=arrays(0)).run_all()
again = Run(directory, verbose=0, dataset=arrays(0)).evaluate()
try:
    Run(directory, verbose=0, dataset=arrays(1)).evaluate()
    error = None
except RunError as e:
    error = str(e)
print("RESULT " + json.dumps({"weighted_f1": results["weighted_f1"],
                              "export_dir": results["export_dir"],
                              "again": again["weighted_f1"], "error": error}))
"""


@pytest.mark.slow
def test_run_all_on_a_dict_of_arrays(tmp_path):
    directory = str(tmp_path / "run")
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", PIPELINE, directory], capture_output=True,
                          text=True, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
    got = json.loads(line[len("RESULT "):])
    with open(os.path.join(directory, "results.json")) as f:
        stored = json.load(f)
    assert stored["dataset"] == "custom"
    assert stored["weighted_f1"] == got["weighted_f1"] == got["again"]
    assert os.path.isdir(got["export_dir"])
    assert got["error"] and "splits.json" in got["error"], got["error"]


@pytest.mark.slow
def test_cli_run_on_an_npz(tmp_path, capsys):
    from ssnas_tf.cli import main
    rng = np.random.default_rng(0)
    label = np.arange(300) % 3
    vector = rng.normal(size=(300, 6)).astype(np.float32)
    vector[np.arange(300), label] += 3.0
    path = tmp_path / "mine.npz"
    np.savez(path, vector=vector, note=np.array([f"w{i % 3}" for i in range(300)]),
             label=label, label_names=np.array(["a", "b", "c"]))
    directory = str(tmp_path / "run")
    assert main(["run", "--dataset", "npz", "--data-dir", str(path), "--output", directory,
                 *TINY_FLAGS]) == 0
    with open(os.path.join(directory, "results.json")) as f:
        results = json.load(f)
    assert results["dataset"] == "npz" and 0.0 <= results["weighted_f1"] <= 1.0
    assert os.path.isdir(results["export_dir"])
