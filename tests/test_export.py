"""TF Serving export: signature, fresh-process loading, saved_model_cli, versions."""

import json
import os
import re
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from ssnas_tf.backbones.layers import standardize_text
from ssnas_tf.serving.export import (ExportError, export_classifier, list_versions,
                                     load_exported)

LABELS = ("cat", "dog", "bird")
SPECS = {"pix": ((6, 5, 1), "uint8"), "fou": ((4,), "float32"), "text": ((), "string")}
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def _tiny_model():
    keras.utils.set_random_seed(1)
    vectorize = layers.TextVectorization(max_tokens=16, output_sequence_length=4,
                                         standardize=standardize_text)
    vectorize.adapt(["a cat sat", "the dog ran far", "a bird flew"])
    pix = keras.Input((6, 5, 1), name="pix")
    fou = keras.Input((4,), name="fou")
    text = keras.Input((), dtype="string", name="text")
    t = layers.Flatten()(layers.Embedding(16, 3)(vectorize(text)))
    x = layers.Concatenate()([layers.Flatten()(pix), fou, t])
    logits = layers.Dense(len(LABELS))(layers.Dense(8, activation="relu")(x))
    return keras.Model({"pix": pix, "fou": fou, "text": text}, logits)


def _raw_batch():
    rng = np.random.default_rng(0)
    return {"pix": rng.integers(0, 256, (3, 6, 5, 1), dtype=np.uint8),
            "fou": rng.normal(size=(3, 4)).astype(np.float32),
            "text": np.array([b"a cat sat", b"the bird ran", b"unknown words here"])}


def _logits(model, raw):
    features = {"pix": raw["pix"].astype(np.float32) / 255.0,
                "fou": raw["fou"], "text": raw["text"]}
    return np.asarray(model({k: tf.constant(v) for k, v in features.items()},
                            training=False))


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _snapshot(folder):
    """Relative path -> bytes of every file under folder (directories as None)."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), folder)] = None
        for f in filenames:
            path = os.path.join(dirpath, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, folder)] = fh.read()
    return out


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("exports")
    model = _tiny_model()
    path = export_classifier(model, SPECS, LABELS, root, "tiny", warmup_inputs=_raw_batch())
    return root, path, model


def test_layout_labels_and_info(exported):
    root, path, _ = exported
    assert path == os.path.join(str(root), "tiny", "1")
    assert "1" in os.listdir(os.path.join(root, "tiny"))
    assert {n for n in os.listdir(os.path.join(root, "tiny")) if not n.isdigit()} == {
        "models.config", "batching_parameters.txt"}
    names = set(os.listdir(path))
    assert {"saved_model.pb", "variables", "labels.txt", "serving_info.json",
            "assets.extra", "request_examples"} <= names
    with open(os.path.join(path, "labels.txt"), encoding="utf-8") as f:
        assert f.read() == "cat\ndog\nbird\n"
    with open(os.path.join(path, "serving_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert info["inputs"] == {
        "pix": {"shape": [None, 6, 5, 1], "dtype": "uint8",
                "preprocessing": [
                    {"by": "model", "step": "cast to float32, divided by 255"}]},
        "fou": {"shape": [None, 4], "dtype": "float32"},
        "text": {"shape": [None], "dtype": "string"}}
    assert info["label_names"] == list(LABELS)
    assert info["multilabel"] is False and info["threshold"] == 0.5
    assert info["outputs"]["probabilities"]["activation"] == "softmax"
    assert info["version"] == 1 and info["signature"] == "serving_default"


FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
path, work = sys.argv[1:3]
serve = tf.saved_model.load(path).signatures["serving_default"]
raw = np.load(work + "/raw.npz")
out = serve(**{k: tf.constant(raw[k]) for k in raw.files})
np.save(work + "/probs.npy", out["probabilities"].numpy())
np.save(work + "/preds.npy", out["predictions"].numpy())
spec = serve.structured_input_signature[1]
print(json.dumps({
    "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in spec.items()},
    "outputs": sorted(serve.structured_outputs),
    "foreign": [m for m in sys.modules
                if m.split(".")[0] in ("ssnas_tf", "tensorflow_text")]}))
"""


# Every way a request can be malformed, sent to the loaded SavedModel in a
# fresh process: the error type and message of each.
CHECKS_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
path, work = sys.argv[1:3]
serve = tf.saved_model.load(path).signatures["serving_default"]
raw = dict(np.load(work + "/raw.npz"))
def bad(**change):
    return dict(raw, **change)
nan = raw["fou"].copy(); nan[:] = np.nan
inf = raw["fou"].copy(); inf[1, 2] = np.inf; inf[2, 0] = -np.inf
cases = {
    "nan": bad(fou=nan), "inf": bad(fou=inf),
    "width": bad(fou=np.zeros((3, 5), np.float32)),
    "rank": bad(fou=np.zeros((3, 4, 1), np.float32)),
    "image": bad(pix=np.zeros((3, 6, 4, 1), np.uint8)),
    "batch": bad(fou=raw["fou"][:2]),
    "dtype": bad(fou=raw["fou"].astype(np.float64)),
    "empty": {k: v[:0] for k, v in raw.items()},
}
report = {}
for name, inputs in cases.items():
    try:
        out = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        report[name] = ["ok", list(out["probabilities"].shape)]
    except Exception as error:
        report[name] = [type(error).__name__, str(error)]
print(json.dumps(report))
"""

# What TF Serving does with the generated requests, without TF Serving: the
# REST body's instances stacked in the signature's dtypes, the gRPC request's
# TensorProtos, and every warm-up record, fed to the loaded SavedModel.
REQUESTS_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
path, work = sys.argv[1:3]
serve = tf.saved_model.load(path).signatures["serving_default"]
spec = serve.structured_input_signature[1]
def run(inputs):
    return serve(**{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy()
with open(path + "/request_examples/predict.json") as f:
    body = json.load(f)
rest = {name: np.array([row[name] for row in body["instances"]],
                       dtype=object if s.dtype == tf.string else s.dtype.as_numpy_dtype)
        for name, s in spec.items()}
with open(path + "/request_examples/predict_request.pbtxt") as f:
    request = text_format.Parse(f.read(), predict_pb2.PredictRequest())
grpc = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
out = {"signature": body["signature_name"], "grpc_model": request.model_spec.name,
       "grpc_signature": request.model_spec.signature_name, "warmup": []}
arrays = {}
for tag, inputs in [("rest", rest), ("grpc", grpc)]:
    arrays.update({f"{tag}_{k}": v for k, v in inputs.items()})
    arrays[tag + "_probs"] = run(inputs)
records = tf.data.TFRecordDataset(path + "/assets.extra/tf_serving_warmup_requests")
for i, record in enumerate(records):
    log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
    request = log.predict_log.request
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    out["warmup"].append([request.model_spec.name, request.model_spec.signature_name,
                          len(inputs["fou"])])
    arrays.update({f"warmup{i}_{k}": v for k, v in inputs.items()})
    arrays[f"warmup{i}_probs"] = run(inputs)
np.savez(work + "/requests.npz", **arrays)
print(json.dumps(out))
"""


def _saved_model_cli():
    exe = shutil.which("saved_model_cli", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]


@pytest.fixture(scope="module")
def served(exported, tmp_path_factory):
    """The export read by three fresh processes, started together to save time."""
    path = exported[1]
    work = tmp_path_factory.mktemp("served")
    raw = _raw_batch()
    np.savez(work / "raw.npz", **raw)
    for key, value in raw.items():
        np.save(work / f"{key}.npy", value)
    cli = _saved_model_cli()
    common = ["--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"]
    inputs = ";".join(f"{k}={work / (k + '.npy')}" for k in raw)
    commands = {
        "python": [sys.executable, "-c", FRESH_PROCESS, path, str(work)],
        "show": cli + ["show"] + common,
        "run": cli + ["run"] + common + ["--inputs", inputs, "--outdir", str(work / "out")],
    }
    nan = raw["fou"].copy()
    nan[1, 1] = np.nan
    np.save(work / "fou_nan.npy", nan)
    commands["run_nan"] = cli + ["run"] + common + [
        "--inputs", inputs.replace("fou.npy", "fou_nan.npy"), "--outdir", str(work / "nan")]
    commands["checks"] = [sys.executable, "-c", CHECKS_PROCESS, path, str(work)]
    commands["requests"] = [sys.executable, "-c", REQUESTS_PROCESS, path, str(work)]
    procs = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True, env=ENV, cwd=work)
             for name, cmd in commands.items()}
    results = {}
    try:
        for name, proc in procs.items():
            stdout, stderr = proc.communicate(timeout=180)
            results[name] = subprocess.CompletedProcess(commands[name], proc.returncode,
                                                        stdout, stderr)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return work, raw, results


def test_fresh_process_serves_same_probabilities(exported, served):
    model = exported[2]
    work, raw, results = served
    result = results["python"]
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["foreign"] == []  # neither ssnas_tf nor tensorflow_text imported
    assert report["inputs"] == {"pix": ["uint8", [None, 6, 5, 1]],
                                "fou": ["float32", [None, 4]],
                                "text": ["string", [None]]}
    assert report["outputs"] == ["predictions", "probabilities"]
    expected = _softmax(_logits(model, raw))
    np.testing.assert_allclose(np.load(work / "probs.npy"), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(work / "preds.npy"), expected.argmax(-1))


def test_saved_model_cli_show_and_run(exported, served):
    model = exported[2]
    work, raw, results = served
    show = results["show"]
    assert show.returncode == 0, show.stderr[-3000:]
    for needle in ("inputs['pix']", "DT_UINT8", "inputs['fou']", "inputs['text']",
                   "DT_STRING", "outputs['probabilities']", "(-1, 6, 5, 1)", "(-1, 3)"):
        assert needle in show.stdout, show.stdout
    run = results["run"]
    assert run.returncode == 0, run.stderr[-3000:]
    assert "probabilities" in run.stdout + run.stderr
    np.testing.assert_allclose(np.load(work / "out" / "probabilities.npy"),
                               _softmax(_logits(model, raw)), rtol=1e-5, atol=1e-6)


def test_saved_model_cli_run_refuses_nan(served):
    """The checks hold where TF Serving runs the graph: in a TensorFlow session."""
    run = served[2]["run_nan"]
    assert run.returncode != 0
    assert "fou: 1 non-finite values (NaN or inf) in rows [1]" in run.stderr, run.stderr[-3000:]


def test_served_text_is_normalised_like_training_text(exported):
    """Full-width input gets the model's own normalisation in the SavedModel."""
    _, path, _ = exported
    serve = load_exported(path).signatures["serving_default"]
    raw = _raw_batch()
    wide = dict(raw, text=np.array(["Ａ ＣＡＴ　ｓａｔ", "ＴＨＥ ｂｉｒｄ ＲＡＮ",
                                    "unknown words here"]))
    out = serve(**{k: tf.constant(v) for k, v in raw.items()})
    out_wide = serve(**{k: tf.constant(v) for k, v in wide.items()})
    np.testing.assert_allclose(out_wide["probabilities"].numpy(),
                               out["probabilities"].numpy(), rtol=1e-6, atol=1e-7)


def test_next_version_and_no_overwrite(exported):
    root, first, model = exported
    before = _snapshot(first)
    versions = list_versions(os.path.join(root, "tiny"))
    second = export_classifier(model, SPECS, LABELS, root, "tiny")
    assert versions[0] == 1
    assert second == os.path.join(str(root), "tiny", str(versions[-1] + 1))
    assert list_versions(os.path.join(root, "tiny")) == versions + [versions[-1] + 1]
    with pytest.raises(FileExistsError, match="never overwritten"):
        export_classifier(model, SPECS, ("x", "y", "z"), root, "tiny", version=1)
    assert _snapshot(first) == before
    assert sorted(n for n in os.listdir(os.path.join(root, "tiny")) if n.isdigit()) == [
        str(v) for v in versions + [versions[-1] + 1]]
    # The model folder loads its largest version.
    serve = load_exported(os.path.join(root, "tiny")).signatures["serving_default"]
    raw = _raw_batch()
    out = serve(**{k: tf.constant(v) for k, v in raw.items()})
    np.testing.assert_allclose(out["probabilities"].numpy(),
                               _softmax(_logits(model, raw)), rtol=1e-5, atol=1e-6)


def test_failure_mid_export_leaves_nothing(exported, monkeypatch):
    root, _, model = exported

    def broken_save(obj, export_dir, *args, **kwargs):
        os.makedirs(os.path.join(export_dir, "variables"))
        with open(os.path.join(export_dir, "saved_model.pb"), "wb") as f:
            f.write(b"partial")
        raise RuntimeError("disk full")

    monkeypatch.setattr(tf.saved_model, "save", broken_save)
    with pytest.raises(RuntimeError, match="disk full"):
        export_classifier(model, SPECS, LABELS, root, "broken", version=4)
    assert os.listdir(os.path.join(root, "broken")) == []
    monkeypatch.undo()
    # Logits that do not match the label names fail while tracing, cleanly too.
    with pytest.raises(ExportError, match="expected \\(N, 2\\)"):
        export_classifier(model, SPECS, ("a", "b"), root, "broken")
    assert os.listdir(os.path.join(root, "broken")) == []


def test_multilabel_uses_sigmoid(exported):
    root, _, model = exported
    path = export_classifier(model, SPECS, LABELS, root, "multi",
                             multilabel=True, threshold=0.3, version=7)
    assert path.endswith(os.path.join("multi", "7"))
    with open(os.path.join(path, "serving_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert info["multilabel"] is True and info["threshold"] == 0.3
    assert info["outputs"]["probabilities"]["activation"] == "sigmoid"
    raw = _raw_batch()
    out = load_exported(path).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in raw.items()})
    expected = 1.0 / (1.0 + np.exp(-_logits(model, raw)))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(out["predictions"].numpy(),
                                  (expected > 0.3).astype(np.int64))


def test_non_core_ops_refused(tmp_path):
    tensorflow_text = pytest.importorskip("tensorflow_text")

    class CountTokens(layers.Layer):
        def call(self, text):
            tokens = tensorflow_text.WhitespaceTokenizer().tokenize(text)
            return tf.cast(tokens.row_lengths(), tf.float32)[:, None]

    text = keras.Input((), dtype="string", name="text")
    model = keras.Model({"text": text}, layers.Dense(2)(CountTokens()(text)))
    with pytest.raises(ExportError, match="outside core TensorFlow"):
        export_classifier(model, {"text": ((), "string")}, ("a", "b"), tmp_path, "tt")
    assert os.listdir(tmp_path / "tt") == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(input_specs={"pix": ((6, 5, 1), "uint16")}), "not supported"),
    (dict(input_specs={"pix": (6, "uint8")}), "per-sample shape"),
    (dict(input_specs={"pix": ((6, 5, 1), "uint8")}), "differ from the model"),
    (dict(threshold=1.0), "threshold"),
    (dict(label_names=("a", "a", "b")), "duplicate"),
    (dict(label_names=("a", "b\nc", "d")), "one-line"),
    (dict(model_name="../escape"), "model_name"),
    (dict(version=-1), "version"),
])
def test_bad_arguments(exported, tmp_path, kwargs, message):
    model = exported[2]
    args = dict(input_specs=SPECS, label_names=LABELS, export_root=tmp_path,
                model_name="bad")
    args.update(kwargs)
    with pytest.raises(ExportError, match=message):
        export_classifier(model, **args)
    assert not os.path.exists(tmp_path / "bad") or os.listdir(tmp_path / "bad") == []


def _one_modality_classifier(tmp_path):
    """A Run-style classifier on mfeat whose genotype reads only 'fou'."""
    from ssnas_tf.backbones import build_backbones
    from ssnas_tf.data import load_dataset
    from ssnas_tf.nas.genotypes import Genotype, StepGenotype
    from ssnas_tf.nas.model import DerivedNetwork

    data = load_dataset("mfeat")
    backbones = build_backbones(data, np.arange(200), width=4)
    backbones.trainable = False
    features = list(backbones.output)
    step = StepGenotype((("identity", 0), ("identity", 1)), ("concat_fc",), (2,))
    genotype = Genotype(inputs=tuple(features),
                        edges=(("identity", features.index("fou_1")),
                               ("identity", features.index("fou_2"))),
                        steps=(step,), concat=(len(features),))
    inputs = {name: keras.Input(t.shape[1:], dtype=t.dtype, name=name)
              for name, t in backbones.input.items()}
    fused = DerivedNetwork(genotype, channels=4, length=2, name="fusion")(
        backbones(inputs, training=False))
    classifier = keras.Model(inputs, layers.Dense(10, name="classifier")(fused))
    # As Run.export gets it: saved by finetune, loaded from classifier.keras.
    classifier.save(tmp_path / "classifier.keras")
    return data, keras.models.load_model(tmp_path / "classifier.keras")


@pytest.mark.slow  # whole searches or fits: kept out of the fast tier
def test_export_takes_only_the_modalities_the_genotype_reads(tmp_path):
    from ssnas_tf.data.pipelines import to_model_inputs
    from ssnas_tf.serving.prune import prune_classifier, used_modalities

    data, classifier = _one_modality_classifier(tmp_path)
    assert len(classifier.input) == 6
    assert used_modalities(classifier) == ("fou",)
    served = prune_classifier(classifier)
    assert list(served.input) == ["fou"]
    # Only the fou backbone's weights remain.
    prefixes = {w.path.split("_")[0] for w in served.weights}
    assert "fou" in prefixes and not prefixes & {"pix", "fac", "kar", "zer", "mor"}
    path = export_classifier(served, {"fou": ((76,), "float32")},
                             data.label_names, tmp_path / "export", "one")
    with open(os.path.join(path, "serving_info.json"), encoding="utf-8") as f:
        assert list(json.load(f)["inputs"]) == ["fou"]
    # A model without a genotype (a RandomNet baseline) is served as it is.
    assert prune_classifier(_tiny_model()).input.keys() == SPECS.keys()
    raw = {k: v[:5] for k, v in data.inputs.items()}
    expected = _softmax(np.asarray(
        classifier(to_model_inputs(raw, data.kinds), training=False)))
    np.save(tmp_path / "fou.npy", raw["fou"])
    cli = _saved_model_cli()
    common = ["--dir", path, "--tag_set", "serve", "--signature_def", "serving_default"]
    show = subprocess.run(cli + ["show"] + common, capture_output=True, text=True,
                          env=ENV, timeout=180)
    assert show.returncode == 0, show.stderr[-3000:]
    assert "inputs['fou']" in show.stdout and "inputs['pix']" not in show.stdout
    run = subprocess.run(cli + ["run"] + common + [
        "--inputs", f"fou={tmp_path / 'fou.npy'}", "--outdir", str(tmp_path / "out")],
        capture_output=True, text=True, env=ENV, timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    np.testing.assert_allclose(np.load(tmp_path / "out" / "probabilities.npy"),
                               expected, rtol=1e-5, atol=1e-6)


def test_serving_info_states_client_and_model_preprocessing(exported, tmp_path):
    """Loader steps come first ("client"), then what the SavedModel does; a
    sequence input with a vocabulary gets its id -> word file."""
    from types import SimpleNamespace

    from ssnas_tf.serving.preprocessing import describe_inputs, vocabulary_files

    model = exported[2]
    data = SimpleNamespace(
        name="fake", kinds={"pix": "image", "fou": "vector", "text": "text", "ids": "sequence"},
        extras={"preprocessing": {"pix": ["alpha-composited over white", "resized"]},
                "vocabulary": ["<pad>", "<mask>", "cat", "dog"]})
    steps = describe_inputs(data, ["pix", "fou", "text"])
    assert vocabulary_files(data, ["pix", "fou", "text"]) == {}
    path = export_classifier(model, SPECS, LABELS, tmp_path, "pre", preprocessing=steps,
                             extra_files=vocabulary_files(data, ["ids"]))
    with open(os.path.join(path, "serving_info.json"), encoding="utf-8") as f:
        inputs = json.load(f)["inputs"]
    assert inputs["pix"]["preprocessing"] == [
        {"by": "client", "step": "alpha-composited over white"},
        {"by": "client", "step": "resized"},
        {"by": "model", "step": "cast to float32, divided by 255"}]
    assert "preprocessing" not in inputs["fou"]
    assert [s["by"] for s in inputs["text"]["preprocessing"]] == ["model"]
    assert "full-width" in inputs["text"]["preprocessing"][0]["step"]
    with open(os.path.join(path, "ids_vocabulary.txt"), encoding="utf-8") as f:
        assert f.read().splitlines() == ["<pad>", "<mask>", "cat", "dog"]
    assert describe_inputs(data, ["ids"])["ids"] == [{"by": "client", "step": (
        "int token ids: 0 = padding, 1 = mask/out-of-vocabulary; "
        "id i is line i of ids_vocabulary.txt")}]
    with pytest.raises(ExportError, match="not served"):
        export_classifier(model, SPECS, LABELS, tmp_path, "pre",
                          preprocessing={"nope": []})
    with pytest.raises(ExportError, match="extra_files"):
        export_classifier(model, SPECS, LABELS, tmp_path, "pre",
                          extra_files={"labels.txt": "x"})


def _fresh_report(result):
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case, pattern", [
    ("nan", r"fou: 12 non-finite values \(NaN or inf\) in rows \[0, 1, 2\]"),
    ("inf", r"fou: 2 non-finite values \(NaN or inf\) in rows \[1, 2\]"),
    ("width", r"fou: expected shape \(batch, 4\), got \(3, 5\)"),
    ("rank", r"fou: expected shape \(batch, 4\), got \(3, 4, 1\)"),
    ("image", r"pix: expected shape \(batch, 6, 5, 1\), got \(3, 6, 4, 1\)"),
    ("batch", r"(fou: batch size 2, but pix has batch size 3"
              r"|pix: batch size 3, but fou has batch size 2)"),
])
def test_bad_requests_fail_loudly_in_a_fresh_process(served, case, pattern):
    """Each malformed request is an InvalidArgumentError naming the input,
    raised before the model runs (not a shape error deep in the graph, and
    not NaN probabilities)."""
    kind, message = _fresh_report(served[2]["checks"])[case]
    assert kind == "InvalidArgumentError", message
    assert re.search(pattern, message), message
    assert "Incompatible shapes" not in message and "ConcatOp" not in message


def test_wrong_dtype_and_empty_batch_in_a_fresh_process(served):
    report = _fresh_report(served[2]["checks"])
    assert report["empty"] == ["ok", [0, 3]]
    # The loaded signature refuses a wrong dtype before the graph runs; its
    # message gives the input's position in the sorted input names.
    kind, message = report["dtype"]
    assert kind == "InvalidArgumentError"
    position = sorted(SPECS).index("fou")
    assert f"input #{position}(zero-based) was expected to be a float tensor but is a " \
           f"double tensor" in message, message


def test_request_examples_and_warmup_run_against_the_saved_model(exported, served):
    """The generated REST body, gRPC request and warm-up records, parsed back
    with json / tensorflow-serving-api's protos in a fresh process, give the
    Keras classifier's probabilities."""
    model = exported[2]
    work, raw, results = served
    report = _fresh_report(results["requests"])
    assert report["signature"] == report["grpc_signature"] == "serving_default"
    assert report["grpc_model"] == "tiny"
    assert report["warmup"] == [["tiny", "serving_default", 1],
                                ["tiny", "serving_default", 1],
                                ["tiny", "serving_default", 3]]
    arrays = np.load(work / "requests.npz", allow_pickle=True)
    for tag in ["rest", "grpc"] + [f"warmup{i}" for i in range(3)]:
        inputs = {k: arrays[f"{tag}_{k}"] for k in SPECS}
        assert inputs["pix"].dtype == np.uint8 and inputs["fou"].dtype == np.float32
        np.testing.assert_allclose(arrays[f"{tag}_probs"], _softmax(_logits(model, inputs)),
                                   rtol=1e-5, atol=1e-6)
    # The examples are the first held-out sample; the warm-up batches are real samples.
    np.testing.assert_array_equal(arrays["rest_fou"], raw["fou"][:1])
    np.testing.assert_array_equal(arrays["grpc_pix"], raw["pix"][:1])
    assert arrays["rest_text"].tolist() == [raw["text"][0].decode()]
    np.testing.assert_array_equal(arrays["warmup2_fou"], raw["fou"])
    np.testing.assert_array_equal(arrays["warmup1_pix"], raw["pix"][1:2])


def test_server_config_files(exported):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from ssnas_tf.serving.server_config import server_command

    root, path, _ = exported
    model_dir = os.path.join(root, "tiny")
    with open(os.path.join(model_dir, "models.config"), encoding="utf-8") as f:
        config = text_format.Parse(f.read(), model_server_config_pb2.ModelServerConfig())
    (entry,) = config.model_config_list.config
    assert entry.name == "tiny" and entry.model_platform == "tensorflow"
    assert entry.base_path == os.path.abspath(model_dir)
    assert entry.model_version_policy.latest.num_versions == 1
    with open(os.path.join(model_dir, "batching_parameters.txt"), encoding="utf-8") as f:
        batching = f.read()
    for line in ["max_batch_size { value: 64 }", "batch_timeout_micros { value: 2000 }",
                 "num_batch_threads { value: 4 }", "max_enqueued_batches { value: 100 }"]:
        assert line in batching.splitlines()
    command = server_command(model_dir)
    assert "--enable_batching" in command
    assert f"--model_config_file={os.path.abspath(model_dir)}/models.config" in command
    assert f"--batching_parameters_file={os.path.abspath(model_dir)}/" \
           f"batching_parameters.txt" in command
    from ssnas_tf.serving.requests import client_examples

    clients = client_examples(path)
    assert f"curl -X POST http://localhost:8501/v1/models/tiny:predict -d " \
           f"@{path}/request_examples/predict.json" in clients
    assert "stub.Predict(request" in clients and "predict_request.pbtxt" in clients
    with open(os.path.join(path, "serving_info.json"), encoding="utf-8") as f:
        info = json.load(f)
    assert info["checked_inputs"] is True
    assert info["warmup"] == {"file": "assets.extra/tf_serving_warmup_requests",
                              "batch_sizes": [1, 1, 3], "samples": "given"}


def test_client_side_request_checks_name_the_input():
    from ssnas_tf.serving.requests import RequestError, check_request, rest_predict_body

    spec = {"pix": ((6, 5, 1), "uint8"), "fou": ((4,), "float32"), "text": ((), "string")}
    raw = _raw_batch()
    good = check_request(dict(raw, text=np.array(["a", "b", "c"])), spec)
    assert good["text"].tolist() == [b"a", b"b", b"c"]
    assert rest_predict_body({k: v[:1] for k, v in good.items()})["instances"][0]["text"] == "a"
    nan = raw["fou"].copy()
    nan[2, 1] = np.nan
    for change, message in [
            (dict(fou=nan), r"fou: 1 non-finite values \(NaN or inf\) in rows \[2\]"),
            (dict(fou=raw["fou"][:, :3]), r"fou: expected shape \(batch, 4\), got \(3, 3\)"),
            (dict(pix=raw["pix"].astype(np.float32) + 0.5), r"pix: expected dtype uint8"),
            (dict(text=raw["text"][:2]), r"text: batch size 2, but"),
            (dict(fou=np.array([["x"] * 4] * 3)), r"fou: expected dtype float32")]:
        with pytest.raises(RequestError, match=message):
            check_request(dict(raw, **change), spec)
    with pytest.raises(RequestError, match=r"missing \['text'\]"):
        check_request({"pix": raw["pix"], "fou": raw["fou"]}, spec)


def test_export_refuses_bad_warmup_inputs(exported, tmp_path):
    model = exported[2]
    raw = _raw_batch()
    with pytest.raises(ExportError, match=r"warmup_inputs: fou: expected shape"):
        export_classifier(model, SPECS, LABELS, tmp_path, "w",
                          warmup_inputs=dict(raw, fou=raw["fou"][:, :2]))
    assert not (tmp_path / "w").exists()
