"""`ssnas predict` / `ssnas_tf.predict`: the served SavedModel on new samples.

An mfeat run (the shared tiny run of test_pipeline) is predicted from an npz
of named arrays and compared with the in-process classifier; CSV input is
checked on a small image + text model exported directly (no training).
"""

import csv
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers
from PIL import Image

import ssnas_tf
from ssnas_tf.backbones.layers import standardize_text
from ssnas_tf.cli import main, next_steps
from ssnas_tf.data import DataError
from ssnas_tf.data.mfeat import EMBEDDED_PATH, pix_to_image
from ssnas_tf.serving.export import ExportError, export_classifier
from ssnas_tf.serving.predict import predict, read_serving_info, resolve_export
from ssnas_tf.workflow.run import Run
from test_pipeline import finished_tiny_run

CLASSES = ("cat", "dog", "owl")
SIZE = (8, 8)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return finished_tiny_run(tmp_path_factory)


@pytest.fixture(scope="module")
def raw_mfeat(tmp_path_factory):
    """The embedded mfeat.npz as a user would pass it (raw 0-6 pix, labels)."""
    path = tmp_path_factory.mktemp("npz") / "digits.npz"
    with np.load(EMBEDDED_PATH) as archive:
        arrays = {name: archive[name] for name in archive.files}
    np.savez(path, **arrays)
    return path, arrays


def _read_rows(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_npz_predictions_equal_the_classifier(tiny_run, raw_mfeat, tmp_path):
    directory, results = tiny_run
    path, arrays = raw_mfeat
    out = tmp_path / "predictions.csv"
    result = predict(directory, path, output=out)
    n = len(arrays["labels"])
    assert result.probabilities.shape == (n, 10)
    classifier = keras.models.load_model(os.path.join(directory, "classifier.keras"))
    features = {name: arrays[name].astype(np.float32) for name in classifier.input}
    if "pix" in features:
        features["pix"] = pix_to_image(arrays["pix"]).astype(np.float32) / 255.0
    logits = np.asarray(classifier.predict(features, verbose=0), np.float64)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    rows = _read_rows(out)
    assert rows[0] == ["id", "predicted"] + [f"p_{d}" for d in range(10)]
    assert len(rows) == n + 1
    assert [r[0] for r in rows[1:4]] == ["0", "1", "2"]
    assert [r[1] for r in rows[1:]] == [str(k) for k in expected.argmax(1)]
    np.testing.assert_allclose(np.array([r[2:] for r in rows[1:]], float), expected,
                               atol=1e-5)
    # labels in the npz: the metrics of `ssnas evaluate`
    assert set(result.metrics) == {"weighted_f1", "accuracy"}
    # The export directory and the run directory designate the same model.
    assert resolve_export(directory) == results["export_dir"]
    same = predict(results["export_dir"], path)
    np.testing.assert_array_equal(same.probabilities, result.probabilities)
    assert same.output is None


def test_cli_and_run_predict(tiny_run, raw_mfeat, tmp_path, capsys):
    directory, _ = tiny_run
    _, arrays = raw_mfeat
    unlabeled = tmp_path / "new.npz"
    np.savez(unlabeled, **{k: v[:300] for k, v in arrays.items() if k != "labels"},
             ids=np.arange(1000, 1300))
    out = tmp_path / "out" / "p.csv"
    assert main(["predict", "--model", directory, "--data", str(unlabeled),
                 "--output", str(out), "--batch-size", "64"]) == 0
    printed = capsys.readouterr().out
    assert "300 samples" in printed and "weighted_f1" not in printed  # no labels
    rows = _read_rows(out)
    assert len(rows) == 301 and rows[1][0] == "1000"
    result = Run(directory).predict(unlabeled)
    assert ssnas_tf.predict is predict
    np.testing.assert_allclose(np.array([r[2:] for r in rows[1:]], float),
                               result.probabilities, atol=1e-6)
    assert result.metrics is None


def test_mfeat_errors(tiny_run, raw_mfeat, tmp_path, capsys):
    directory, results = tiny_run
    _, arrays = raw_mfeat
    served = sorted(read_serving_info(results["export_dir"])["inputs"])
    # a missing modality
    missing = tmp_path / "missing.npz"
    np.savez(missing, **{k: v for k, v in arrays.items() if k != served[0]})
    with pytest.raises(DataError, match=f"\\['{served[0]}'\\] are missing"):
        predict(directory, missing)
    # another dataset's data: a CSV of images and text for an mfeat model
    other = tmp_path / "other.csv"
    other.write_text("image,text\na.png,hello\n")
    with pytest.raises(DataError, match="columns .* are missing"):
        predict(directory, other)
    with pytest.raises(DataError, match="trained on dataset 'mfeat'"):
        predict(directory, other, dataset="csv")
    # right names, wrong shapes
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{k: v[:, :3] if v.ndim == 2 and k != "pix" else v
                       for k, v in arrays.items()})
    if served != ["pix"]:  # a vector is served
        with pytest.raises(DataError, match="has shape .* the model expects"):
            predict(directory, wrong)
    # empty input
    empty = tmp_path / "empty.npz"
    np.savez(empty, **{k: v[:0] for k, v in arrays.items()})
    with pytest.raises(DataError, match="no samples"):
        predict(directory, empty)
    (tmp_path / "zero.npz").write_bytes(b"")
    assert main(["predict", "--model", directory, "--data",
                 str(tmp_path / "zero.npz")]) == 2
    assert "cannot read" in capsys.readouterr().err
    # no export: a run directory without one
    with pytest.raises(ExportError, match="neither a run directory nor an export"):
        predict(tmp_path, missing)
    assert main(["predict", "--model", str(tmp_path), "--data", str(missing)]) == 2
    assert "neither a run directory nor an export" in capsys.readouterr().err


# -- CSV input ---------------------------------------------------------------------

def _image_text_model():
    keras.utils.set_random_seed(3)
    vectorize = layers.TextVectorization(max_tokens=20, output_sequence_length=4,
                                         standardize=standardize_text)
    vectorize.adapt(["a cat sat", "the dog ran far", "an owl flew"])
    image = keras.Input(SIZE + (3,), name="image")
    text = keras.Input((), dtype="string", name="text")
    t = layers.Flatten()(layers.Embedding(20, 3)(vectorize(text)))
    x = layers.Concatenate()([layers.Flatten()(image), t])
    logits = layers.Dense(len(CLASSES))(layers.Dense(8, activation="relu")(x))
    return keras.Model({"image": image, "text": text}, logits)


@pytest.fixture(scope="module")
def csv_export(tmp_path_factory):
    root = tmp_path_factory.mktemp("csv_export")
    model = _image_text_model()
    path = export_classifier(model, {"image": (SIZE + (3,), "uint8"),
                                     "text": ((), "string")},
                             CLASSES, root, "items", provenance={"dataset": "csv"})
    folder = tmp_path_factory.mktemp("csv_images")
    rng = np.random.default_rng(0)
    images = []
    for i in range(5):
        pixels = rng.integers(0, 256, SIZE + (3,), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        images.append(pixels)
    return path, model, folder, images


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return path


def test_csv_of_700_unlabeled_rows(csv_export):
    path, model, folder, images = csv_export
    words = ["a cat sat", "the dog", "an owl flew far", "unknown"]
    lines = ["image,text,notes"] + [f"{i % 5}.png,{words[i % 4]},x" for i in range(703)]
    data = _write(folder, "new.csv", "\n".join(lines) + "\n")
    out = folder / "predictions.csv"
    result = predict(os.path.dirname(path), data, output=out)
    rows = _read_rows(out)
    assert rows[0] == ["id", "predicted", "p_cat", "p_dog", "p_owl"]
    assert len(rows) == 704
    assert [r[0] for r in rows[1:3]] == ["2", "3"]  # line numbers, header = line 1
    features = {"image": tf.constant(np.stack([images[i % 5] for i in range(703)])
                                     .astype(np.float32) / 255.0),
                "text": tf.constant([words[i % 4] for i in range(703)])}
    logits = np.asarray(model(features, training=False), np.float64)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(result.probabilities, expected, atol=1e-5)
    assert [r[1] for r in rows[1:]] == [CLASSES[k] for k in expected.argmax(1)]
    assert result.metrics is None


def test_csv_labels_give_metrics_and_ids(csv_export, capsys):
    path, _, folder, _ = csv_export
    data = _write(folder, "labeled.csv",
                  "id,image,text,label\nq1,0.png,a cat,cat\nq2,1.png,a dog,dog\n")
    result = predict(path, data)
    assert list(result.ids) == ["q1", "q2"] and "accuracy" in result.metrics
    assert main(["predict", "--model", path, "--data", str(data), "--output",
                 str(folder / "labeled_out.csv")]) == 0
    assert "weighted_f1" in capsys.readouterr().out


def test_csv_bad_rows_listed_or_skipped(csv_export, capsys):
    path, _, folder, _ = csv_export
    data = _write(folder, "bad.csv", (
        "image,text,label\n"
        "0.png,fine,cat\n"          # line 2
        "nope.png,x,cat\n"          # line 3: missing image
        "1.png,,dog\n"              # line 4: empty text
        "1.png,x\n"                 # line 5: field count
        "2.png,y,lion\n"            # line 6: class the model lacks
        "3.png,z,owl\n"))           # line 7
    with pytest.raises(DataError) as info:
        predict(path, data)
    message = str(info.value)
    for needle in ("4 bad rows", "line 3: image file", "line 4: empty text",
                   "line 5: 2 fields", "line 6: class 'lion'"):
        assert needle in message
    result = predict(path, data, on_bad_rows="skip")
    assert list(result.ids) == [2, 7]
    assert [line for line, _ in result.skipped_rows] == [3, 4, 5, 6]
    assert "skipped 4 bad rows" in capsys.readouterr().err
    assert main(["predict", "--model", path, "--data", str(data)]) == 2
    assert "line 3" in capsys.readouterr().err


def test_csv_missing_modality_empty_file_and_other_dataset(csv_export, tiny_run,
                                                           raw_mfeat):
    path, _, folder, _ = csv_export
    no_text = _write(folder, "no_text.csv", "image,label\n0.png,cat\n")
    with pytest.raises(DataError, match=r"the columns \['text'\] are missing"):
        predict(path, no_text)
    with pytest.raises(DataError, match="is empty; expected a header row"):
        predict(path, _write(folder, "empty.csv", ""))
    with pytest.raises(DataError, match="no usable data rows"):
        predict(path, _write(folder, "header.csv", "image,text\n"))
    # mfeat arrays for an image + text model
    with pytest.raises(DataError, match=r"reads the input\(s\) \['image', 'text'\]"):
        predict(path, raw_mfeat[0])
    with pytest.raises(DataError, match="trained on dataset 'csv'"):
        predict(path, raw_mfeat[0], dataset="mfeat")
    with pytest.raises(DataError, match="unsupported input"):
        predict(path, _write(folder, "x.txt", "hello"))


def test_csv_image_paths_stay_in_the_csv_folder(csv_export, tmp_path):
    path, _, folder, _ = csv_export
    outside = tmp_path / "outside.png"
    Image.fromarray(np.zeros(SIZE + (3,), np.uint8)).save(outside)
    data = _write(folder, "escape.csv", (
        f"image,text\n{outside},abs\n../{tmp_path.name}/outside.png,up\n0.png,fine\n"))
    with pytest.raises(DataError) as info:
        predict(path, data)
    assert "2 bad rows" in str(info.value)
    message = str(info.value)
    assert "line 2: image" in message and "line 3: image" in message
    assert "outside" in message and "image_root" in message
    assert list(predict(path, data, on_bad_rows="skip").ids) == [4]
    # The loader's option widens the root, as for training data.
    widened = predict(path, data, dataset_options={"image_root": str(tmp_path.parent)})
    assert list(widened.ids) == [2, 3, 4]


def test_next_steps_names_files_and_commands(tiny_run):
    directory, results = tiny_run
    text = next_steps(results, directory)
    assert f"ssnas predict --model {directory}" in text
    assert "docker run" in text and results["export_dir"] in text
    assert os.path.join(directory, "classifier.keras") in text
    assert "weighted_f1" in text


def test_dataset_folder_uses_its_loader_and_labels(tiny_run, raw_mfeat, tmp_path):
    from ssnas_tf.data.mfeat import VIEWS, csv_name
    from test_data_mfeat import _csv_text
    directory, _ = tiny_run
    path, arrays = raw_mfeat
    rows = np.arange(0, 2000, 40)
    for view in VIEWS:
        (tmp_path / csv_name(view)).write_text(
            _csv_text(arrays[view][rows], arrays["labels"][rows]))
    result = predict(directory, tmp_path)
    assert list(result.ids) == list(range(len(rows))) and result.metrics is not None
    subset = tmp_path / "subset.npz"
    np.savez(subset, **{k: v[rows] for k, v in arrays.items()})
    np.testing.assert_allclose(result.probabilities, predict(directory, subset).probabilities,
                               atol=1e-6)


def test_next_steps_lists_only_files_that_exist(tmp_path):
    (tmp_path / "randomnet_architecture.svg").write_text("<svg/>")
    text = next_steps({"weighted_f1": 0.5, "export_dir": "/srv/export/m/3"}, str(tmp_path))
    assert "classifier:" not in text and "results:" not in text
    assert f"picture:    {tmp_path / 'randomnet_architecture.svg'}" in text
    assert "source=/srv/export/m,target=/models/m -e MODEL_NAME=m" in text
    assert "ssnas predict" not in next_steps({"weighted_f1": 0.5}, str(tmp_path))
