"""End to end on mfeat with a tiny configuration: `Run.run_all`, the artifacts
of every step, the TF Serving export in a fresh process, and the step-by-step
CLI.

The full step-by-step CLI runs (ssl and supervised) are marked slow; the
default suite drives the CLI through finetune/evaluate/export on a copy of
the finished run. The tiny ssl run is made once per pytest session, shared by the xdist workers
(`finished_tiny_run`, also used by test_cli_errors.py, test_predict.py and
test_cross_modal.py) and never modified: tests that change a run
directory work on a copy.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.cli import main
from ssnas_tf.workflow.config import RunConfig
from ssnas_tf.data import load_dataset
from ssnas_tf.data.mfeat import PIX_PREPROCESSING
from ssnas_tf.nas.genotypes import Genotype
from ssnas_tf.data.pipelines import to_model_inputs
from ssnas_tf.workflow.run import Run
from ssnas_tf.filelock import FileLock
from ssnas_tf.data.splits import make_splits
from ssnas_tf.seeds import derive_seed

TINY = RunConfig(backbone_epochs=1, search_epochs=1, pretrain_epochs=1, finetune_epochs=1,
                 batch_size=64, finetune_batch_size=32, backbone_width=8, channels=8,
                 length=4, num_cells=2, num_steps=1, projection_dim=16)

# TINY as CLI flags (there is no flag for the projection size: a CLI run uses
# the default).
TINY_FLAGS = ["--epochs", "1", "--backbone-epochs", "1", "--pretrain-epochs", "1",
              "--finetune-epochs", "1", "--batch-size", "64", "--finetune-batch-size",
              "32", "--backbone-width", "8", "--channels", "8", "--length", "4",
              "--num-cells", "2", "--num-steps", "1"]

STEP_SECONDS = ("backbones", "search", "pretrain", "finetune", "evaluate", "export")
RESULT_KEYS = ("dataset", "method", "label_fraction", "seed", "weighted_f1", "accuracy",
               "genotype", "export_dir", "splits", "seconds")
ARTIFACTS = ("config.json", "splits.json", "backbones.keras", "search_log.jsonl",
             "genotype.json", "architecture.svg", "architecture.png", "encoder.keras",
             "encoder_genotype.json", "classifier.keras", "classifier_genotype.json",
             "results.json")

_FINISHED = {}


def finished_tiny_run(tmp_path_factory):
    """The tiny ssl run's directory and results, made once per session.

    Treat the directory as read-only; copy it (`copy_run`) to change it.
    """
    if "ssl" not in _FINISHED:
        root = tmp_path_factory.getbasetemp()
        if os.environ.get("PYTEST_XDIST_WORKER"):
            root = root.parent  # the folder all workers of this session share
        shared = root / "tiny_ssl_shared"
        # One worker trains it; the others wait for the lock, then read it.
        with FileLock(str(root / "tiny_ssl_shared.lock")):
            if not (shared / "finished").exists():
                Run(str(shared / "run"), TINY, verbose=0).run_all()
                (shared / "finished").write_text("")
        _FINISHED["ssl"] = (str(shared / "run"),
                            _read_json(str(shared / "run" / "results.json")))
    return _FINISHED["ssl"]


def copy_run(source, target, skip=()):
    """Copies a run directory, leaving out the top-level names in `skip`."""
    shutil.copytree(source, target, ignore=lambda d, names: [
        n for n in names if d == str(source) and n in skip])
    return str(target)


def _read_json(path):
    with open(path) as f:
        return json.load(f)


def _softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _tmp_leftovers(directory):
    return [os.path.join(d, n) for d, dirs, files in os.walk(directory)
            for n in dirs + files if n.startswith(".tmp-")]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return finished_tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def mfeat():
    return load_dataset("mfeat")


def test_run_all_writes_every_artifact(tiny_run):
    directory, _ = tiny_run
    for name in ARTIFACTS:
        path = os.path.join(directory, name)
        assert os.path.isfile(path) and os.path.getsize(path) > 0, name
    assert not _tmp_leftovers(directory)


def test_config_and_splits(tiny_run, mfeat):
    directory, _ = tiny_run
    with open(os.path.join(directory, "config.json")) as f:
        assert RunConfig.from_json(f.read()) == TINY
    # A run directory reopens from its config.json alone.
    assert Run(directory).config == TINY
    splits = _read_json(os.path.join(directory, "splits.json"))
    expected = make_splits(mfeat, "ssl", 0.1, derive_seed(0, "splits"))  # the seed tree
    for name, index in expected.to_dict().items():
        assert splits[name] == index, name
    assert splits["sizes"] == expected.sizes() == {
        "test": 500, "labeled": 150, "unlabeled": 1350,
        "search_train": len(expected.search_train),
        "search_valid": len(expected.search_valid),
        "search_select": len(expected.search_select)}


def test_search_log_has_one_line_per_epoch(tiny_run):
    directory, _ = tiny_run
    with open(os.path.join(directory, "search_log.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    assert len(lines) == TINY.search_epochs
    record = lines[0]
    assert record["epoch"] == 1 and np.isfinite(record["score"])
    weights = {k: np.asarray(v) for k, v in record["arch_weights"].items()}
    assert set(weights) == {"alpha", "beta", "gamma"}
    num_features = 12  # six modalities, two taps each
    cells, steps = TINY.num_cells, TINY.num_steps
    assert weights["alpha"].shape == (sum(num_features + k for k in range(cells)), 2)
    assert weights["beta"].shape == (cells, sum(2 + m for m in range(steps)), 2)
    assert weights["gamma"].shape == (cells, steps, len(TINY.primitives))
    for w in weights.values():  # logged softmaxed
        np.testing.assert_allclose(w.sum(axis=-1), 1.0, atol=1e-3)
    genotype = Genotype.from_dict(record["genotype"])
    assert genotype.num_cells == cells


def test_genotype_and_pictures(tiny_run):
    directory, results = tiny_run
    genotype = Genotype.load(os.path.join(directory, "genotype.json"))
    assert genotype.to_dict() == results["genotype"]
    assert genotype.num_cells == TINY.num_cells
    assert len(genotype.inputs) == 12
    assert all(len(s.inner_steps) == TINY.num_steps and "zero" not in s.inner_steps
               for s in genotype.steps)
    with open(os.path.join(directory, "search_log.jsonl")) as f:
        best = json.loads(f.readlines()[results["search_best_epoch"] - 1])
    assert best["genotype"] == results["genotype"]
    with open(os.path.join(directory, "architecture.svg")) as f:
        svg = f.read()
    assert "<svg" in svg and svg.rstrip().endswith("</svg>")
    with open(os.path.join(directory, "architecture.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_results_json(tiny_run):
    directory, returned = tiny_run
    results = _read_json(os.path.join(directory, "results.json"))
    assert results == returned
    for key in RESULT_KEYS:
        assert key in results, key
    assert results["dataset"] == "mfeat" and results["method"] == "ssl"
    assert results["label_fraction"] == 0.1 and results["seed"] == 0
    assert 0.0 <= results["weighted_f1"] <= 1.0
    assert 0.0 <= results["accuracy"] <= 1.0
    assert results["splits"]["test"] == 500
    for step in STEP_SECONDS:
        assert isinstance(results["seconds"][step], (int, float)), step
        assert results["seconds"][step] >= 0, step
    assert results["seconds"]["pretrain"] > 0  # ssl pretrains
    assert results["encoder_origin"] == "pretrained"
    assert results["export_dir"] == os.path.abspath(
        os.path.join(directory, "export", "ssnas_mfeat", "1"))


def test_export_has_tf_serving_layout(tiny_run, mfeat):
    directory, results = tiny_run
    model_dir = os.path.join(directory, "export", "ssnas_mfeat")
    assert sorted(os.listdir(model_dir)) == ["1", "batching_parameters.txt",
                                             "models.config"]
    version_dir = os.path.join(model_dir, "1")
    names = set(os.listdir(version_dir))
    assert {"saved_model.pb", "variables", "labels.txt", "serving_info.json",
            "assets.extra", "request_examples"} <= names
    with open(os.path.join(version_dir, "labels.txt")) as f:
        assert f.read().splitlines() == list(mfeat.label_names)
    info = _read_json(os.path.join(version_dir, "serving_info.json"))
    # Exactly the modalities whose features the classifier's genotype reads.
    genotype = Genotype.load(os.path.join(directory, "classifier_genotype.json"))
    used = {feature.rsplit("_", 1)[0] for feature in genotype.used_inputs}
    assert list(info["inputs"]) == [m for m in mfeat.modalities if m in used]
    if "pix" in used:
        assert info["inputs"]["pix"] == {"shape": [None, 16, 15, 1], "dtype": "uint8",
                                         "preprocessing": [
                    {"by": "client", "step": PIX_PREPROCESSING},
                    {"by": "model", "step": "cast to float32, divided by 255"}]}
    for name in used - {"pix"}:
        assert info["inputs"][name] == {
            "shape": [None, mfeat.inputs[name].shape[1]], "dtype": "float32"}
    assert info["multilabel"] is False and info["label_names"] == list(mfeat.label_names)
    assert info["provenance"] == {"genotype": results["genotype"], "dataset": "mfeat",
                                  "method": "ssl", "label_fraction": 0.1, "seed": 0}
    # TF Serving's warm-up requests hold the first held-out test samples.
    from tensorflow_serving.apis import prediction_log_pb2
    test = make_splits(mfeat, "ssl", 0.1, derive_seed(0, "splits")).test
    records = list(tf.data.TFRecordDataset(
        os.path.join(version_dir, "assets.extra", "tf_serving_warmup_requests")))
    assert info["warmup"]["samples"] == "given" and len(records) == 3
    last = prediction_log_pb2.PredictionLog.FromString(records[-1].numpy())
    assert sorted(last.predict_log.request.inputs) == sorted(info["inputs"])
    for name, proto in last.predict_log.request.inputs.items():
        np.testing.assert_array_equal(tf.make_ndarray(proto), mfeat.inputs[name][test[:8]])


SERVE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    export_dir, work = sys.argv[1], sys.argv[2]
    names = json.loads(sys.argv[3])
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    out = serve(**{n: tf.constant(np.load(f"{work}/{n}.npy")) for n in names})
    np.save(f"{work}/probabilities.npy", out["probabilities"].numpy())
    np.save(f"{work}/predictions.npy", out["predictions"].numpy())
    spec = serve.structured_input_signature[1]
    assert "ssnas_tf" not in sys.modules, "ssnas_tf was imported"
    print(json.dumps({
        "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in spec.items()},
        "outputs": sorted(serve.structured_outputs),
        "ssnas_tf": sorted(m for m in sys.modules if m.split(".")[0] == "ssnas_tf")}))
""")


def test_export_serves_raw_inputs_in_a_fresh_process(tiny_run, mfeat, tmp_path):
    directory, results = tiny_run
    test = make_splits(mfeat, "ssl", 0.1, derive_seed(0, "splits")).test[:7]
    raw = {name: array[test] for name, array in mfeat.inputs.items()}
    assert raw["pix"].dtype == np.uint8 and raw["pix"].shape == (7, 16, 15, 1)
    for name in ("fou", "fac", "kar", "zer", "mor"):
        assert raw[name].dtype == np.float32
    for name, array in raw.items():
        np.save(tmp_path / f"{name}.npy", array)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    served_inputs = list(_read_json(os.path.join(results["export_dir"],
                                                 "serving_info.json"))["inputs"])
    proc = subprocess.run(
        [sys.executable, "-c", SERVE, results["export_dir"], str(tmp_path),
         json.dumps(served_inputs)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["ssnas_tf"] == []
    assert report["outputs"] == ["predictions", "probabilities"]
    expected_specs = {"pix": ["uint8", [None, 16, 15, 1]], "fou": ["float32", [None, 76]]}
    assert sorted(report["inputs"]) == sorted(served_inputs)
    for name in set(expected_specs) & set(served_inputs):
        assert report["inputs"][name] == expected_specs[name]

    classifier = keras.models.load_model(os.path.join(directory, "classifier.keras"))
    logits = classifier.predict(to_model_inputs(raw, mfeat.kinds), verbose=0)
    expected = _softmax(np.asarray(logits, np.float64))
    served = np.load(tmp_path / "probabilities.npy")
    assert served.shape == (7, 10)
    np.testing.assert_allclose(served, expected, atol=1e-4)
    np.testing.assert_array_equal(np.load(tmp_path / "predictions.npy"),
                                  expected.argmax(axis=1))


def _check_cli_results(directory, method):
    results = _read_json(os.path.join(directory, "results.json"))
    for key in RESULT_KEYS:
        assert key in results, key
    assert results["method"] == method
    for step in ("search", "finetune", "evaluate", "export"):
        assert results["seconds"][step] >= 0, step
    Genotype.from_dict(results["genotype"])
    assert results["export_dir"] == os.path.abspath(
        os.path.join(directory, "export", "ssnas_mfeat", "1"))
    assert os.path.isfile(os.path.join(results["export_dir"], "saved_model.pb"))
    assert not _tmp_leftovers(directory)
    return results


def test_cli_pretrain_is_skipped_for_supervised(tiny_run, tmp_path):
    """Cheap stand-in for the slow supervised run: `pretrain` on a supervised
    run directory trains nothing and records 0 s."""
    directory, _ = tiny_run
    d = copy_run(directory, tmp_path / "sup", skip=("encoder.keras",))
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write(TINY.replace(method="supervised").to_json())
    assert main(["pretrain", "--output", d]) == 0
    assert not os.path.exists(os.path.join(d, "encoder.keras"))
    assert _read_json(os.path.join(d, "results.json"))["seconds"]["pretrain"] == 0.0


@pytest.mark.slow
def test_cli_step_by_step_supervised(tmp_path, capsys):
    """The step-by-step CLI on a supervised run: search, pretrain (skipped),
    finetune, evaluate, export, each exit code 0."""
    d = str(tmp_path / "sup")
    assert main(["search", "--output", d, "--method", "supervised", *TINY_FLAGS]) == 0
    assert Run(d).config.method == "supervised"
    for name in ("config.json", "splits.json", "backbones.keras", "genotype.json",
                 "search_log.jsonl", "architecture.svg", "architecture.png"):
        assert os.path.isfile(os.path.join(d, name)), name
    assert main(["pretrain", "--output", d]) == 0
    assert not os.path.exists(os.path.join(d, "encoder.keras"))
    assert main(["finetune", "--output", d]) == 0
    assert main(["evaluate", "--output", d]) == 0
    assert main(["export", "--output", d]) == 0
    results = _check_cli_results(d, "supervised")
    assert results["seconds"]["pretrain"] == 0.0
    assert results["search_criterion"].startswith("weighted F1 on ")
    assert "held-out" in results["search_criterion"]
    assert "ssnas " not in capsys.readouterr().err  # no "ssnas <cmd>: error"


@pytest.mark.slow
def test_cli_step_by_step_ssl(tmp_path, capsys):
    """`ssnas search` with the tiny flags, then each later step."""
    d = str(tmp_path / "ssl")
    assert main(["search", "--output", d, *TINY_FLAGS]) == 0
    assert main(["pretrain", "--output", d]) == 0
    assert os.path.isfile(os.path.join(d, "encoder.keras"))
    assert main(["finetune", "--output", d]) == 0
    assert main(["evaluate", "--output", d]) == 0
    assert main(["export", "--output", d]) == 0
    results = _check_cli_results(d, "ssl")
    assert results["seconds"]["pretrain"] > 0
    # A second export is the next version; the first is kept as it was.
    assert main(["export", "--output", d]) == 0
    versions = [n for n in os.listdir(os.path.join(d, "export", "ssnas_mfeat"))
                if os.path.isdir(os.path.join(d, "export", "ssnas_mfeat", n))]
    assert sorted(versions) == ["1", "2"]  # beside them: models.config, batching
    assert "error" not in capsys.readouterr().err


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_cli_finetune_with_another_genotype(tiny_run, tmp_path, mfeat):
    """`finetune --genotype` on a copy of the finished run, then evaluate and
    export into another root: a classifier for that genotype."""
    directory, results = tiny_run
    d = copy_run(directory, tmp_path / "copy", skip=("classifier.keras", "results.json",
                                                     "export", "encoder.keras"))
    other, path = _other_genotype(results["genotype"], tmp_path)
    root = str(tmp_path / "served")
    with pytest.warns(RuntimeWarning, match="encoder.keras not found"):
        assert main(["finetune", "--output", d, "--genotype", path]) == 0
    assert main(["evaluate", "--output", d]) == 0
    assert main(["export", "--output", d, "--export-root", root, "--model-name", "other",
                 "--model-version", "3"]) == 0
    new = _read_json(os.path.join(d, "results.json"))
    assert new["export_dir"] == os.path.abspath(os.path.join(root, "other", "3"))
    assert os.path.isfile(os.path.join(root, "other", "3", "saved_model.pb"))
    assert 0.0 <= new["weighted_f1"] <= 1.0
    assert new["genotype"] == other and new["encoder_origin"] == "random"


def _other_genotype(genotype, folder):
    """A genotype unlike `genotype` (other fusion ops), saved in `folder`."""
    other = json.loads(json.dumps(genotype))
    for step in other["steps"]:
        step["inner_steps"] = ["concat_fc" if op == "sum" else "sum"
                               for op in step["inner_steps"]]
    path = os.path.join(folder, "other_genotype.json")
    with open(path, "w") as f:
        json.dump(other, f)
    return other, path


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_finetune_refuses_an_encoder_pretrained_from_another_genotype(
        tiny_run, tmp_path, capsys):
    """`pretrain --genotype X` builds encoder.keras from X: `finetune` asked for
    the run's genotype refuses it; `finetune --genotype X` uses it and every
    artifact records X."""
    directory, results = tiny_run
    d = copy_run(directory, tmp_path / "copy", skip=(
        "classifier.keras", "classifier_genotype.json", "results.json", "export"))
    other, path = _other_genotype(results["genotype"], tmp_path)
    assert main(["pretrain", "--output", d, "--genotype", path]) == 0
    assert _read_json(os.path.join(d, "encoder_genotype.json")) == other
    capsys.readouterr()
    assert main(["finetune", "--output", d]) == 2
    err = capsys.readouterr().err
    assert "ssnas finetune: error: " in err and "encoder.keras" in err, err
    assert "genotype.json" in err and "ssnas pretrain" in err, err
    assert not os.path.exists(os.path.join(d, "classifier.keras"))
    assert main(["finetune", "--output", d, "--genotype", path]) == 0
    assert main(["evaluate", "--output", d]) == 0
    assert _read_json(os.path.join(d, "classifier_genotype.json")) == other
    recorded = _read_json(os.path.join(d, "results.json"))
    assert recorded["genotype"] == other and recorded["encoder_origin"] == "pretrained"


def test_ssl_finetune_without_an_encoder_warns_and_records_it(tiny_run, tmp_path):
    directory, _ = tiny_run
    d = copy_run(directory, tmp_path / "copy", skip=(
        "encoder.keras", "encoder_genotype.json", "classifier.keras", "results.json",
        "export"))
    with pytest.warns(RuntimeWarning, match="encoder.keras not found"):
        Run(d, verbose=0).finetune()
    assert _read_json(os.path.join(d, "results.json"))["encoder_origin"] == "random"


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_ssl_search_reads_no_label_outside_the_labeled_part(tiny_run, tmp_path, mfeat,
                                                           monkeypatch):
    """The ssl search again, on a copy of the data whose labels outside the
    labeled part are scrambled (same splits.json, fingerprint of the copy):
    the same architecture weights epoch by epoch, and the same genotype."""
    import dataclasses
    from ssnas_tf.workflow import run as run_module
    from ssnas_tf.workflow.fingerprint import dataset_fingerprint
    directory, _ = tiny_run
    d = copy_run(directory, tmp_path / "copy", skip=(
        "genotype.json", "search_log.jsonl", "results.json", "encoder.keras",
        "classifier.keras", "export"))
    splits = _read_json(os.path.join(d, "splits.json"))
    hidden = np.setdiff1d(np.arange(mfeat.num_samples), splits["labeled"])
    labels = mfeat.labels.copy()
    labels[hidden] = np.random.default_rng(1).integers(0, 10, len(hidden))
    scrambled = dataclasses.replace(mfeat, labels=labels)
    splits["fingerprint"] = dataset_fingerprint(scrambled, splits["fingerprint"]["sources"])
    with open(os.path.join(d, "splits.json"), "w") as f:
        json.dump(splits, f)
    monkeypatch.setattr(run_module, "load_dataset", lambda *a, **k: scrambled)
    Run(d, verbose=0).search()
    assert (_read_json(os.path.join(d, "genotype.json"))
            == _read_json(os.path.join(directory, "genotype.json")))
    logs = []
    for folder in (directory, d):
        with open(os.path.join(folder, "search_log.jsonl")) as f:
            logs.append([json.loads(line) for line in f if line.strip()])
    for a, b in zip(*logs, strict=True):
        assert a["genotype"] == b["genotype"]
        np.testing.assert_allclose(a["score"], b["score"], rtol=1e-4)
        for key in a["arch_weights"]:
            np.testing.assert_allclose(a["arch_weights"][key], b["arch_weights"][key],
                                       atol=1e-4)


def _search_again_on(directory, target, changed, monkeypatch):
    """Searches a copy of `directory` on the dataset `changed(splits)` returns;
    the (original, copy) search logs."""
    import dataclasses  # noqa: F401  (used by the callers' `changed`)
    from ssnas_tf.workflow import run as run_module
    from ssnas_tf.workflow.fingerprint import dataset_fingerprint
    d = copy_run(directory, target, skip=(
        "genotype.json", "search_log.jsonl", "results.json", "encoder.keras",
        "classifier.keras", "export"))
    splits = _read_json(os.path.join(d, "splits.json"))
    data = changed(splits)
    splits["fingerprint"] = dataset_fingerprint(data, splits["fingerprint"]["sources"])
    with open(os.path.join(d, "splits.json"), "w") as f:
        json.dump(splits, f)
    monkeypatch.setattr(run_module, "load_dataset", lambda *a, **k: data)
    Run(d, verbose=0).search()
    logs = []
    for folder in (directory, d):
        with open(os.path.join(folder, "search_log.jsonl")) as f:
            logs.append([json.loads(line) for line in f if line.strip()])
    return logs


def _same_architecture_weights_other_scores(logs):
    for a, b in zip(*logs, strict=True):
        for key in a["arch_weights"]:
            np.testing.assert_allclose(a["arch_weights"][key], b["arch_weights"][key],
                                       atol=1e-4)
    assert any(abs(a["score"] - b["score"]) > 1e-3 for a, b in zip(*logs)), \
        "the criterion did not read the select part"


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_ssl_genotype_is_selected_on_samples_that_train_no_weight(tiny_run, tmp_path,
                                                                   mfeat, monkeypatch):
    """Noise in place of the select part's inputs changes the criterion but
    not one architecture weight: the architecture step never reads it."""
    import dataclasses
    directory, _ = tiny_run

    def noisy_select(splits):
        select = np.asarray(splits["search_select"])
        rng = np.random.default_rng(0)
        inputs = {}
        for name, values in mfeat.inputs.items():
            values = values.copy()
            values[select] = rng.normal(size=values[select].shape).astype(values.dtype)
            inputs[name] = values
        return dataclasses.replace(mfeat, inputs=inputs)
    logs = _search_again_on(directory, tmp_path / "copy", noisy_select, monkeypatch)
    _same_architecture_weights_other_scores(logs)


@pytest.mark.slow
def test_supervised_genotype_is_selected_on_labels_that_train_no_weight(tmp_path, mfeat,
                                                                        monkeypatch):
    """Scrambled labels of the held-out select part change the weighted-F1
    criterion but not the architecture weights; the parts are disjoint."""
    import dataclasses
    directory = str(tmp_path / "run")
    run = Run(directory, dataclasses.replace(TINY, method="supervised", label_fraction=0.3,
                                             search_epochs=2), verbose=0)
    run.start()
    run.search()
    s = run.splits
    assert len(s.search_select) == round(0.2 * len(s.labeled))
    assert not np.intersect1d(s.search_select, np.union1d(s.search_train,
                                                          s.search_valid)).size

    def scrambled_select(splits):
        select = np.asarray(splits["search_select"])
        labels = mfeat.labels.copy()
        labels[select] = (labels[select] + 1 + np.arange(len(select)) % 9) % 10
        return dataclasses.replace(mfeat, labels=labels)
    logs = _search_again_on(directory, tmp_path / "copy", scrambled_select, monkeypatch)
    _same_architecture_weights_other_scores(logs)


def test_export_signature_has_only_the_modalities_the_genotype_reads(tiny_run, tmp_path,
                                                                     mfeat):
    """A classifier whose genotype reads only 'fou' is served with 'fou' alone."""
    directory, results = tiny_run
    d = copy_run(directory, tmp_path / "copy", skip=("classifier.keras", "export"))
    features = list(results["genotype"]["inputs"])
    one = dict(results["genotype"], edges=[["identity", features.index("fou_1")],
                                           ["identity", features.index("fou_2")]],
               concat=[len(features)])
    one["steps"] = one["steps"][:1]
    genotype = Genotype.from_dict(one)
    run = Run(d, verbose=0)
    encoder = run.build_encoder(genotype, run._frozen_backbones())
    logits = keras.layers.Dense(10)(encoder.output)
    classifier = keras.Model(encoder.input, logits, name="classifier")
    classifier.save(os.path.join(d, "classifier.keras"))
    info_path = os.path.join(run.export()["export_dir"], "serving_info.json")
    assert list(_read_json(info_path)["inputs"]) == ["fou"]


def test_export_provenance_of_a_classifier_without_a_genotype(tiny_run):
    """A classifier with no fusion network (e.g. RandomNet's) is exported with
    the run's settings and no genotype."""
    directory, _ = tiny_run
    plain = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    run = Run(directory)
    assert run.step("export").provenance(run, plain) == {
        "dataset": "mfeat", "method": "ssl", "label_fraction": 0.1, "seed": 0}
