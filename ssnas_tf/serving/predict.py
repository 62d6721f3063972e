"""Predictions of an exported classifier on new samples (`ssnas predict`).

`predict` runs the TF Serving SavedModel that `ssnas export` wrote (so it
tests exactly what is served) on samples read from a file or a folder, and
writes one CSV row per sample:

```
id,predicted,p_0,p_1,...,p_9
0,7,0.001,0.002,...,0.0003
```

`id` is the input's own id (a CSV `id` column, an npz `ids` array) or else
the CSV line number (the header is line 1) or the sample's position (npz,
dataset folder). `predicted` is the most probable class name, or, for a
multi-label model, the names above the threshold joined by "|". Then one
`p_<class name>` column per class, in the order of the export's labels.txt.

Inputs, by form:

* `.npz`: one array per served input, named as in `serving_info.json`
  (e.g. mfeat's `fou`, `kar`, `pix`, ...), first axis = samples. Extra arrays
  are ignored. For mfeat, `pix` may also be the raw (N, 240) 0-6 values of
  the embedded `mfeat.npz`. Optional: `labels` (class ids, or multi-hot
  (N, K)), `ids`.
* `.csv`: the columns of `ssnas_tf.data.csv_files` (`image`, `audio`,
  `text` and the table columns the model reads), with the label column
  (`label`, or `labels` for multi-label) optional. Images are read at the
  size the model was trained on, WAV files cut or padded to its clip length
  (and refused at another sample rate); numeric table cells may be empty
  (missing). Bad rows follow the loader's rules:
  listed with their line numbers (`on_bad_rows="fail"`, the default) or
  dropped and listed on stderr (`on_bad_rows="skip"`).
* a folder: a dataset in its published layout, read by the dataset's loader
  (`ssnas_tf.data.load_dataset(dataset, data_dir=folder)`); its labels are used.

When the input has labels, the metrics of `ssnas evaluate` are computed too.

Example:
>>> result = predict("runs/demo", "new_digits.npz", output="predictions.csv")
>>> result.label_names[result.probabilities.argmax(1)[:3]]
"""

import csv
import dataclasses
import json
import os
import pathlib
import sys
from typing import Dict, Optional, Tuple

import numpy as np

from ssnas_tf.data.base import DataError

PREDICTIONS_FILE = "predictions.csv"
PROGRESS_MIN_SAMPLES = 1000  # inputs at least this large get a progress bar
_SHOWN_ROWS = 20


@dataclasses.dataclass
class Predictions:
    """What `predict` computed.

    Args:
        ids: (N,) one id per sample, as written in the `id` column.
        probabilities: float32 (N, K), column k = class `label_names[k]`.
        predicted: (N,) the predicted class name(s) per sample ("|"-joined
            for a multi-label model).
        label_names: the K class names of the model.
        metrics: the metrics against the input's labels, or None without labels.
        output: the CSV file written, or None.
        skipped_rows: `(line, reason)` of the CSV rows dropped with
            `on_bad_rows="skip"`.
    """

    ids: np.ndarray
    probabilities: np.ndarray
    predicted: np.ndarray
    label_names: Tuple[str, ...]
    metrics: Optional[Dict[str, float]] = None
    output: Optional[str] = None
    skipped_rows: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Samples:
    ids: np.ndarray
    inputs: Dict[str, np.ndarray]
    labels: Optional[np.ndarray]
    skipped: list


def predict(model, data, dataset=None, output=None, batch_size=256,
            on_bad_rows="fail", dataset_options=None, progress=None):
    """Predicts the class of every sample in `data` with an exported model.

    Args:
        model: a run directory (its newest export is used), an export's model
            directory (`<export_root>/<name>`, largest version) or a version
            directory (holding `saved_model.pb`).
        data: an `.npz` file, a `.csv` file or a dataset folder (see the
            module doc).
        dataset: the dataset name; must match the model's when the export
            records it. Defaults to None (the model's own dataset).
        output: CSV file to write the predictions to. Defaults to None (none
            written).
        batch_size: samples per call of the SavedModel. Defaults to 256.
        on_bad_rows: CSV input: "fail" or "skip" (see the module doc).
            Defaults to "fail".
        dataset_options: extra loader options for a dataset folder. Defaults
            to None.
        progress: show a progress bar on stderr; None shows one from
            `PROGRESS_MIN_SAMPLES` samples on. Defaults to None.

    Returns:
        A `Predictions`.

    Raises:
        DataError: missing or unreadable input, bad rows (with "fail"), inputs
            the model does not read or of the wrong shape, a model from
            another dataset, no samples.
        ExportError: `model` holds no export, or one without serving_info.json.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: need a positive integer, got {batch_size!r}")
    if on_bad_rows not in ("fail", "skip"):
        raise ValueError(f"on_bad_rows: must be 'fail' or 'skip', got {on_bad_rows!r}")
    version_dir = resolve_export(model)
    info = read_serving_info(version_dir)
    dataset = _check_dataset(info, dataset, version_dir)
    samples = _load_samples(pathlib.Path(os.fspath(data)), info, dataset, on_bad_rows,
                            dict(dataset_options or {}))
    inputs = _check_inputs(samples.inputs, info, data, dataset)
    n = len(samples.ids)
    probabilities = _run_model(version_dir, inputs, n, batch_size,
                               n >= PROGRESS_MIN_SAMPLES if progress is None else progress)
    from ssnas_tf.tasks import Task
    label_names = tuple(info["label_names"])
    task = Task(len(label_names), info["multilabel"], info["threshold"])
    decided = task.decide(probabilities)
    names = np.array(label_names, dtype=object)
    if task.multilabel:
        predicted = np.array(["|".join(names[row.astype(bool)]) for row in decided],
                             dtype=object)
    else:
        predicted = names[decided]
    metrics = None if samples.labels is None else task.metrics(samples.labels, probabilities)
    result = Predictions(samples.ids, probabilities, predicted, label_names, metrics,
                         skipped_rows=samples.skipped)
    if output is not None:
        result.output = write_predictions(result, output)
    return result


def resolve_export(model):
    """The SavedModel version directory that `model` designates.

    Args:
        model: a version directory, an export's model directory (largest
            version), or a run directory (the `export_dir` of its results.json,
            else the newest version under `export/`).

    Returns:
        The version directory (holding `saved_model.pb`).

    Raises:
        ExportError: `model` is missing or holds no export.
    """
    from ssnas_tf.serving.export import ExportError, list_versions
    path = os.fspath(model)
    if not os.path.isdir(path):
        raise ExportError(f"--model {path}: no such directory (pass a run "
                                f"directory or an export directory)")
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = list_versions(path)
    if versions:
        return os.path.join(path, str(versions[-1]))
    results = os.path.join(path, "results.json")
    if os.path.isfile(results):
        with open(results, encoding="utf-8") as f:
            export_dir = json.load(f).get("export_dir")
        if export_dir and os.path.isfile(os.path.join(export_dir, "saved_model.pb")):
            return export_dir
    export_root = os.path.join(path, "export")
    if os.path.isdir(export_root):
        found = [os.path.join(export_root, name, str(list_versions(
            os.path.join(export_root, name))[-1])) for name in sorted(os.listdir(export_root))
            if list_versions(os.path.join(export_root, name))]
        if found:
            return max(found, key=os.path.getmtime)
    if os.path.isfile(os.path.join(path, "config.json")):
        raise ExportError(f"--model {path}: the run has no export yet; run "
                                f"`ssnas export --output {path}` first")
    raise ExportError(f"--model {path}: neither a run directory nor an export "
                            f"(no saved_model.pb, version folders or export/)")


def read_serving_info(version_dir):
    """The export's `serving_info.json` as a dict.

    Raises:
        ExportError: the export has no serving_info.json (not written by
            `ssnas_tf.serving.export_classifier`).
    """
    from ssnas_tf.serving.export import INFO_FILE, ExportError
    path = os.path.join(version_dir, INFO_FILE)
    if not os.path.isfile(path):
        raise ExportError(f"{path} not found: not an ssnas export (write one "
                                f"with `ssnas export`)")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_predictions(result, path):
    """Writes `result` as CSV (`id`, `predicted`, `p_<class>`...), atomically.

    Returns:
        The path written.
    """
    from ssnas_tf.atomic import atomic_write_text
    import io
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "predicted", *(f"p_{name}" for name in result.label_names)])
    for sample_id, predicted, row in zip(result.ids, result.predicted,
                                         result.probabilities):
        writer.writerow([sample_id, predicted, *(f"{p:.7g}" for p in row)])
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    atomic_write_text(path, buffer.getvalue())
    return path


# -- reading the samples --------------------------------------------------------

def _check_dataset(info, dataset, version_dir):
    recorded = (info.get("provenance") or {}).get("dataset")
    if dataset is not None and recorded is not None and dataset != recorded:
        raise DataError(f"--dataset {dataset}: the model in {version_dir} was trained "
                        f"on dataset '{recorded}'; pass data of that dataset (or a "
                        f"model trained on '{dataset}')")
    return dataset or recorded


def _load_samples(path, info, dataset, on_bad_rows, options):
    if not path.exists():
        raise DataError(f"--data {path}: no such file or folder")
    if path.is_dir():
        return _read_folder(path, info, dataset, options)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _read_npz(path, info, dataset)
    if suffix == ".csv":
        from ssnas_tf.serving.predict_csv import read_csv
        return _Samples(*read_csv(path, info, on_bad_rows, options))
    raise DataError(f"--data {path}: unsupported input; expected a .csv file, an "
                    f".npz file of named arrays, or a dataset folder")


def _read_folder(path, info, dataset, options):
    if dataset is None:
        raise DataError(f"--data {path}: a folder needs --dataset (the export does "
                        f"not record its dataset)")
    from ssnas_tf.data import load_dataset
    data = load_dataset(dataset, data_dir=str(path), **options)
    if tuple(data.label_names) != tuple(info["label_names"]):
        raise DataError(f"--data {path}: its classes {list(data.label_names)[:10]} "
                        f"differ from the model's {info['label_names'][:10]}")
    return _Samples(np.arange(data.num_samples), dict(data.inputs), data.labels, [])


def _read_npz(path, info, dataset):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"--data {path}: cannot read as .npz: {error}") from None
    inputs = {name: arrays[name] for name in info["inputs"] if name in arrays}
    _check_present(inputs, info, path, dataset)
    if dataset == "mfeat" and "pix" in inputs and inputs["pix"].ndim == 2:
        from ssnas_tf.data.mfeat import pix_to_image
        inputs["pix"] = pix_to_image(inputs["pix"])  # the embedded file's raw 0-6 rows
    lengths = {name: len(a) for name, a in inputs.items() if np.ndim(a)}
    n = next(iter(lengths.values()), 0)
    labels = arrays.get("labels")
    if labels is not None:
        labels = _check_npz_labels(path, labels, n, info)
    ids = arrays.get("ids", np.arange(n))
    if len(ids) != n:
        raise DataError(f"--data {path}: 'ids' has {len(ids)} entries for {n} samples")
    return _Samples(np.asarray(ids), inputs, labels, [])


def _check_npz_labels(path, labels, n, info):
    k = len(info["label_names"])
    expected = (n, k) if info["multilabel"] else (n,)
    if labels.shape != expected or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"--data {path}: 'labels' is {labels.dtype} {labels.shape}; "
                        f"expected integer {expected}")
    if not info["multilabel"] and n and (labels.min() < 0 or labels.max() >= k):
        raise DataError(f"--data {path}: 'labels' holds class ids outside [0, {k})")
    return labels


def _check_present(inputs, info, data, dataset):
    served = info["inputs"]
    missing = sorted(set(served) - set(inputs))
    if missing:
        trained = f" on dataset '{dataset}'" if dataset else ""
        raise DataError(f"--data {data}: the model was trained{trained} and reads "
                        f"the input(s) {sorted(served)}; {missing} are missing "
                        f"(a model of another dataset?)")


def _check_inputs(inputs, info, data, dataset):
    """The served inputs, checked against serving_info.json and cast."""
    served = info["inputs"]
    _check_present(inputs, info, data, dataset)
    out, n = {}, None
    for name, spec in served.items():
        array = np.asarray(inputs[name])
        want = tuple(spec["shape"][1:])
        shape_ok = array.ndim == len(want) + 1 and all(
            w is None or w == d for w, d in zip(want, array.shape[1:]))
        if not shape_ok:
            shown = tuple("N" if d is None else d for d in spec["shape"])
            raise DataError(f"--data {data}: input '{name}' has shape {array.shape}; "
                            f"the model expects {shown} (a model of another dataset?)")
        if n is None:
            n = len(array)
        elif len(array) != n:
            raise DataError(f"--data {data}: input '{name}' has {len(array)} samples, "
                            f"the others {n}")
        out[name] = _cast(array, spec["dtype"], name, data)
    if not n:
        raise DataError(f"--data {data}: no samples")
    return out


def _cast(array, dtype, name, data):
    if dtype == "string":
        if array.dtype.kind not in "OUS":
            raise DataError(f"--data {data}: input '{name}' must be text, got {array.dtype}")
        return np.array([v.encode("utf-8") if isinstance(v, str) else bytes(v)
                         for v in array], dtype=object)
    if array.dtype.kind not in "biuf":
        raise DataError(f"--data {data}: input '{name}' must be numeric, got {array.dtype}")
    if dtype == "uint8" and array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DataError(f"--data {data}: input '{name}' must hold 0-255 values "
                            f"(uint8), got {array.min()}..{array.max()}")
    return array.astype(dtype)


def _run_model(version_dir, inputs, n, batch_size, progress):
    import tensorflow as tf
    from ssnas_tf.serving.export import SIGNATURE_NAME, load_exported
    serve = load_exported(version_dir).signatures[SIGNATURE_NAME]
    chunks = []
    for start in range(0, n, batch_size):
        batch = {name: tf.constant(a[start:start + batch_size])
                 for name, a in inputs.items()}
        try:  # an export that checks its inputs refuses bad values (e.g. NaN)
            chunks.append(serve(**batch)["probabilities"].numpy())
        except tf.errors.InvalidArgumentError as error:
            raise DataError(f"samples {start}-{min(start + batch_size, n) - 1}: the "
                            f"model refused them: {error.message}") from None
        if progress:
            _progress(min(start + batch_size, n), n)
    if progress:
        print(file=sys.stderr)
    return np.concatenate(chunks).astype(np.float32)


def _progress(done, total, width=30):
    filled = width * done // total
    print(f"\rpredict {done}/{total} [{'=' * filled}{'.' * (width - filled)}]",
          end="", file=sys.stderr, flush=True)


__all__ = ["PREDICTIONS_FILE", "Predictions", "predict", "read_serving_info",
           "resolve_export", "write_predictions"]
