"""Export a trained classifier as a TF Serving SavedModel.

`export_classifier` wraps a Keras model that maps a dict of modality tensors to
logits in a serving function that takes the RAW inputs of `ssnas_tf.data`
(uint8 images and spectrograms, float32 vectors, int32 token ids, string text),
applies the model and returns probabilities. It writes one SavedModel version in
TF Serving's versioned layout, atomically:

```
<export_root>/<model_name>/
    1/                        <- one complete version per integer directory
        saved_model.pb
        variables/            (variables.index, variables.data-*)
        assets/               (only if the model has file assets)
        assets.extra/tf_serving_warmup_requests
                              TFRecord of PredictionLog: TF Serving replays
                              these requests when it loads the version
        fingerprint.pb
        labels.txt            one class name per line, line i = class index i
        serving_info.json     inputs (with their preprocessing), outputs, label
                              names, multilabel, threshold, checked_inputs,
                              warmup, provenance (optional)
        request_examples/     predict.json (REST body), predict_request.pbtxt
                              (gRPC PredictRequest), one real sample
        <name>_vocabulary.txt sequence inputs with a vocabulary: line i = id i
    2/
    .tmp-3-<random>/          only while version 3 is being written
    models.config             TF Serving model config for this folder
    batching_parameters.txt   TF Serving server-side batching parameters
```

The label files sit at the top of the version directory, beside
`saved_model.pb`: TF Serving and `tf.saved_model.load` read only
`saved_model.pb`, `variables/` and `assets/`, and ignore the rest. TF Serving
loads only directories whose name is an integer, so the temporary directory is
never served, and a version directory appears in one `os.replace` with all its
files in place. A failed export removes its temporary directory; one left by a
killed process is harmless and may be deleted. Two exports racing for the same
version: the second fails with FileExistsError (rename never replaces a
non-empty directory).

The serving function (signature `serving_default`):

* inputs: one named, typed tensor per modality, batch dimension `None`, with the
  per-sample shapes and dtypes given in `input_specs`. Before the model runs,
  the graph checks every request (`ssnas_tf.serving.checks`): per-sample shapes,
  one batch size across inputs, finite float values; a violation is an
  `InvalidArgumentError` naming the input (`kar: expected shape (batch, 64),
  got (3, 65)`). `uint8` inputs (images,
  spectrograms) are cast to float32 and divided by 255 before the model sees
  them; every other input is passed through unchanged. `serving_info.json`
  lists, per input, the ordered `preprocessing` steps: those the client must
  repeat (what the loader did: compositing, resizing, rescaling, word ids) and
  those the model does itself.
* outputs:
    * `probabilities`: float32 (N, K): softmax of the logits, or the sigmoid
      for a multi-label model.
    * `predictions`: int64. Multi-class: (N,) index of the most probable class.
      Multi-label: (N, K) multi-hot, 1 where `probabilities > threshold`
      (the rule `ssnas_tf.metrics.weighted_f1` scores).
  Class index i is line i of `labels.txt`.

Only core TensorFlow ops may appear in the graph: a SavedModel with
tensorflow-text ops does not load in TF Serving (nor in a Python process that
has not imported `tensorflow_text`). Keras' `TextVectorization` uses core ops
only; `export_classifier` refuses graphs with other ops.

The warm-up requests are built from `warmup_inputs` (`Run.export`: the first
held-out test samples), and `models.config` / `batching_parameters.txt` are
rewritten beside the versions by every export (`ssnas_tf.serving.server_config`);
docs/serving.md has the `tensorflow_model_server` command line using them.

Serving with TF Serving (Docker):

```
docker run -p 8501:8501 \\
  --mount type=bind,source=<export_root>/<model_name>,target=/models/<model_name> \\
  -e MODEL_NAME=<model_name> -t tensorflow/serving
```

TF Serving serves the largest version and picks up new versions as they appear.
A REST request in the row ("instances") format gives each instance as a dict of
named inputs WITHOUT the batch dimension (uint8 images as nested lists of
integers 0-255, text as a plain string):

```
curl -d '{"instances": [{"pix": [[[0], [255], ...], ...], "fou": [0.1, ...],
                         "text": "a short caption"}]}' \\
  -X POST http://localhost:8501/v1/models/<model_name>:predict
```

The answer is `{"predictions": [{"probabilities": [...], "predictions": ...}]}`,
one dict per instance. Without TF Serving, check an export with

```
saved_model_cli show --dir <export_root>/<model_name>/1 --tag_set serve \\
  --signature_def serving_default
saved_model_cli run --dir <export_root>/<model_name>/1 --tag_set serve \\
  --signature_def serving_default --inputs 'pix=pix.npy;fou=fou.npy'
```

or `load_exported(path).signatures["serving_default"](pix=..., fou=...)`.
"""

import errno
import json
import os
import re
import shutil
import uuid

from collections.abc import Mapping

import keras
import numpy as np
import tensorflow as tf

from ssnas_tf.serving.checks import check_inputs
from ssnas_tf.serving.preprocessing import UINT8_STEP
from ssnas_tf.serving.requests import (EXAMPLES_DIR, WARMUP_FILE, RequestError,
                                       check_request, warmup_batches, write_request_examples,
                                       write_warmup_file)
from ssnas_tf.serving.server_config import write_server_config
from ssnas_tf.tasks import Task
from ssnas_tf.version import __version__

SIGNATURE_NAME = "serving_default"
LABELS_FILE = "labels.txt"
INFO_FILE = "serving_info.json"
SUPPORTED_DTYPES = ("uint8", "float32", "int32", "int64", "string")
_TMP_PREFIX = ".tmp-"
# Signature keys become graph placeholder names, which TensorFlow restricts.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


class ExportError(ValueError):
    """An export that cannot be written; the message names the argument or path."""


def export_classifier(model, input_specs, label_names, export_root, model_name,
                      version=None, multilabel=False, threshold=0.5,
                      core_ops_only=True, preprocessing=None, extra_files=None,
                      provenance=None, check_inputs=True, warmup_inputs=None,
                      nan_inputs=(), input_attributes=None):
    """Writes `model` as version `version` of a TF Serving model, atomically.

    Args:
        model: a Keras model called on a dict modality name -> tensor (images
            and spectrograms as float32 in [0, 1]) that returns logits (N, K).
        input_specs: modality name -> (per-sample shape, dtype) of the raw
            serving inputs, dtype in `SUPPORTED_DTYPES` ("uint8" is scaled by
            1/255); shape entries may be None; dict order = serving_info order.
        label_names: K class names (non-empty, unique, no line breaks).
        export_root: folder holding one subfolder per served model.
        model_name: the TF Serving model name, a plain folder name.
        version: integer version >= 0. Defaults to None: one more than the
            largest existing version, or 1 for a new model.
        multilabel: sigmoid and multi-hot predictions. Defaults to False.
        threshold: multi-label decision threshold in (0, 1). Defaults to 0.5.
        core_ops_only: refuse ops outside core TensorFlow (TF Serving cannot
            load them). Defaults to True.
        preprocessing: input name -> ordered `{"by": "client" | "model",
            "step": str}` entries for `serving_info.json` (see
            `ssnas_tf.serving.preprocessing`). Defaults to None.
        extra_files: file name -> text, written beside `labels.txt` (e.g.
            vocabularies). Defaults to None.
        provenance: JSON-able facts about where the model comes from (e.g.
            the genotype it was built from), stored as `serving_info.json`'s
            "provenance". Defaults to None (not stored).
        check_inputs: check every request inside the graph before the model
            runs (`ssnas_tf.serving.checks`): dtypes and per-sample shapes,
            one batch size, finite floats. Defaults to True.
        warmup_inputs: input name -> a few real samples (leading batch
            dimension) for TF Serving's warm-up requests and the request
            examples; `Run.export` passes held-out test samples. Defaults to
            None: one all-zero (empty-string) sample.
        nan_inputs: float32 inputs that may hold NaN, meaning a missing value
            (numeric table columns); the checks still refuse inf. Listed as
            "nan_inputs" in `serving_info.json`. Defaults to ().
        input_attributes: input name -> JSON-able facts merged into its
            `serving_info.json` entry (e.g. the table column it reads, the
            sample rate of a waveform). Defaults to None.

    Returns:
        The new version directory, `<export_root>/<model_name>/<version>`.

    Raises:
        FileExistsError: the version exists (it is left as it is).
        ExportError: bad arguments, logits that do not match `label_names`,
            or non-core ops. Nothing is left behind on any error.

    Example:
    >>> path = export_classifier(model, {"pix": ((16, 15, 1), "uint8"),
    ...     "fou": ((76,), "float32")}, [str(d) for d in range(10)], "out", "mfeat")
    >>> load_exported(path).signatures["serving_default"](pix=pix, fou=fou)
    {'probabilities': <tf.Tensor: shape=(N, 10) ...>, 'predictions': ...}
    """
    signature = _input_signature(input_specs)
    label_names = _check_label_names(label_names)
    _check_model_inputs(model, signature)
    task = Task(len(label_names), multilabel, _check_threshold(threshold))
    _check_model_name(model_name)
    preprocessing = _check_preprocessing(preprocessing, signature)
    files = _check_extra_files(extra_files)
    nan_inputs = tuple(nan_inputs)
    warmup = _check_warmup_inputs(warmup_inputs, signature, nan_inputs)
    bad = [n for n in nan_inputs if n not in signature or signature[n].dtype != tf.float32]
    if bad:
        raise ExportError(f"nan_inputs: {bad} are not float32 inputs")
    attributes = dict(input_attributes or {})
    if set(attributes) - set(signature):
        raise ExportError(f"input_attributes: inputs {sorted(set(attributes) - set(signature))} "
                          f"are not served")
    model_dir = os.path.join(os.fspath(export_root), model_name)
    os.makedirs(model_dir, exist_ok=True)
    version = _new_version(model_dir, model_name, version)
    version_dir = os.path.join(model_dir, str(version))
    tmp_dir = os.path.join(model_dir, f"{_TMP_PREFIX}{version}-{uuid.uuid4().hex[:8]}")
    try:
        _write_saved_model(tmp_dir, model, signature, task, core_ops_only, check_inputs,
                           nan_inputs)
        batches = warmup_batches(warmup)
        write_warmup_file(tmp_dir, batches, model_name)
        write_request_examples(tmp_dir, batches[0], model_name)
        files[LABELS_FILE] = "".join(name + "\n" for name in label_names)
        info = _serving_info(model_name, version, signature, label_names, task,
                             preprocessing)
        for name, facts in attributes.items():
            info["inputs"][name].update(facts)
        info["checked_inputs"] = bool(check_inputs)
        info["nan_inputs"] = list(nan_inputs)
        info["warmup"] = {"file": WARMUP_FILE, "batch_sizes": [
            len(next(iter(b.values()))) for b in batches],
            "samples": "given" if warmup_inputs is not None else "zeros"}
        if provenance is not None:
            info["provenance"] = provenance
        files[INFO_FILE] = json.dumps(info, indent=2) + "\n"
        for name, text in files.items():
            with open(os.path.join(tmp_dir, name), "w", encoding="utf-8") as f:
                f.write(text)
        _rename_no_overwrite(tmp_dir, version_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    write_server_config(model_dir, model_name)
    return version_dir


def _check_warmup_inputs(warmup_inputs, signature, nan_inputs=()):
    """The warm-up samples in the signature's dtypes; zeros when none are given."""
    spec = {name: (tuple(s.shape.as_list()[1:]), s.dtype.name)
            for name, s in signature.items()}
    if warmup_inputs is None:
        warmup_inputs = {
            name: np.full((1,) + tuple(1 if d is None else d for d in shape),
                          b"" if dtype == "string" else 0,
                          dtype=object if dtype == "string" else dtype)
            for name, (shape, dtype) in spec.items()}
    try:
        checked = check_request(dict(warmup_inputs), spec, nan_inputs)
    except RequestError as error:
        raise ExportError(f"warmup_inputs: {error}") from None
    if not len(next(iter(checked.values()))):
        raise ExportError("warmup_inputs: need at least one sample")
    return checked


def _check_threshold(threshold):
    if not 0.0 < float(threshold) < 1.0:
        raise ExportError(f"threshold: must lie in (0, 1), got {threshold!r}")
    return float(threshold)


def _check_model_name(model_name):
    if not isinstance(model_name, str) or not model_name or model_name in (".", "..") \
            or model_name.startswith(".") or os.sep in model_name \
            or (os.altsep and os.altsep in model_name):
        raise ExportError(f"model_name: need a plain folder name, got {model_name!r}")


def _check_preprocessing(preprocessing, signature):
    preprocessing = dict(preprocessing or {})
    unknown = sorted(set(preprocessing) - set(signature))
    if unknown:
        raise ExportError(f"preprocessing: inputs {unknown} are not served "
                          f"({sorted(signature)})")
    for name, steps in preprocessing.items():
        for step in steps:
            if not isinstance(step, Mapping) or step.get("by") not in ("client", "model") \
                    or not isinstance(step.get("step"), str):
                raise ExportError(
                    f"preprocessing['{name}']: need {{'by': 'client' | 'model', "
                    f"'step': str}} entries, got {step!r}")
    return {name: [dict(step) for step in steps] for name, steps in preprocessing.items()}


def _check_extra_files(extra_files):
    files = dict(extra_files or {})
    reserved = {LABELS_FILE, INFO_FILE, "saved_model.pb", "fingerprint.pb",
                "variables", "assets", "assets.extra", EXAMPLES_DIR}
    for name, text in files.items():
        if not isinstance(name, str) or name in reserved or name.startswith(".") \
                or os.sep in name or (os.altsep and os.altsep in name):
            raise ExportError(f"extra_files: {name!r} is not a free plain file name")
        if not isinstance(text, str):
            raise ExportError(f"extra_files['{name}']: need text, got {type(text).__name__}")
    return files


def _new_version(model_dir, model_name, version):
    """The version to write: checked, or the next free one; never an existing one."""
    if version is None:
        existing = list_versions(model_dir)
        version = existing[-1] + 1 if existing else 1
    elif isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ExportError(f"version: need an integer >= 0, got {version!r}")
    version_dir = os.path.join(model_dir, str(version))
    if os.path.lexists(version_dir):
        raise FileExistsError(
            f"{version_dir}: version {version} of '{model_name}' already exists; "
            f"versions are never overwritten (pass another version, or None for "
            f"the next one)")
    return version


def _write_saved_model(directory, model, signature, task, core_ops_only, checked,
                       nan_inputs=()):
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(SIGNATURE_NAME,
                         _serving_fn(model, task, signature, checked, nan_inputs),
                         input_signature=[signature])
    archive.write_out(directory, verbose=False)
    if core_ops_only:
        _check_core_ops(directory)


def load_exported(path):
    """Loads an export with `tf.saved_model.load` only (no ssnas_tf, no Keras).

    Args:
        path: a version directory, or a model directory (`<export_root>/<name>`),
            in which case the largest version is loaded.

    Returns:
        The loaded object; call `.signatures["serving_default"](**inputs)` with
        the raw named inputs.
    """
    path = os.fspath(path)
    if not os.path.exists(os.path.join(path, "saved_model.pb")):
        versions = list_versions(path) if os.path.isdir(path) else []
        if not versions:
            raise ExportError(f"{path}: neither a SavedModel nor a folder of versions")
        path = os.path.join(path, str(versions[-1]))
    return tf.saved_model.load(path)


def list_versions(model_dir):
    """Sorted integer versions under `model_dir` (the ones TF Serving would see)."""
    if not os.path.isdir(model_dir):
        return []
    return sorted(int(name) for name in os.listdir(model_dir)
                  if name.isascii() and name.isdigit()
                  and os.path.isdir(os.path.join(model_dir, name)))


def _input_signature(input_specs):
    if not isinstance(input_specs, dict) or not input_specs:
        raise ExportError("input_specs: need a non-empty dict name -> (shape, dtype)")
    signature = {}
    for name, spec in input_specs.items():
        field = f"input_specs['{name}']"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ExportError(f"{field}: input names must match {_NAME.pattern}")
        try:
            shape, dtype = spec
            shape = tuple(None if d is None else int(d) for d in shape)
        except (TypeError, ValueError):
            raise ExportError(
                f"{field}: expected (per-sample shape tuple, dtype), got {spec!r}") from None
        if dtype not in SUPPORTED_DTYPES:
            raise ExportError(
                f"{field}: dtype {dtype!r} not supported; expected one of {SUPPORTED_DTYPES}")
        signature[name] = tf.TensorSpec((None,) + shape, tf.as_dtype(dtype), name=name)
    return signature


def _check_label_names(label_names):
    names = tuple(label_names)
    if not names:
        raise ExportError("label_names: need at least one class name")
    for name in names:
        if not isinstance(name, str) or not name or "\n" in name or "\r" in name:
            raise ExportError(
                f"label_names: need non-empty one-line strings, got {name!r}")
    if len(set(names)) != len(names):
        raise ExportError(f"label_names: duplicate names in {list(names)}")
    return names


def _check_model_inputs(model, signature):
    # Only functional models declare their inputs; a subclassed model is trusted.
    try:
        inputs = model.input
    except (AttributeError, ValueError):
        return
    if isinstance(inputs, dict) and set(inputs) != set(signature):
        raise ExportError(
            f"input_specs: names {sorted(signature)} differ from the model's "
            f"inputs {sorted(inputs)}")


def _serving_fn(model, task, signature, checked=True, nan_inputs=()):
    def serve(inputs):
        if checked:
            inputs = check_inputs(inputs, signature, nan_inputs)
        features = {name: tf.cast(x, tf.float32) / 255.0 if x.dtype == tf.uint8 else x
                    for name, x in inputs.items()}
        logits = tf.cast(model(features, training=False), tf.float32)
        if logits.shape.rank != 2 or logits.shape[-1] != task.num_classes:
            raise ExportError(
                f"model: logits have shape {logits.shape}; expected (N, "
                f"{task.num_classes}) for {task.num_classes} label names")
        return task.tf_outputs(logits)

    return serve


def _check_core_ops(saved_model_dir):
    """Raises ExportError if the graph uses ops that core TensorFlow lacks.

    `tf.raw_ops` lists the ops built into TensorFlow itself; ops registered by
    extension libraries (tensorflow-text's `TFText>...`) are not in it even
    after the library is imported.
    """
    from tensorflow.core.protobuf import saved_model_pb2  # pylint: disable=import-outside-toplevel

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model_dir, "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    used, functions = set(), set()
    for graph in proto.meta_graphs:
        used.update(node.op for node in graph.graph_def.node)
        for function in graph.graph_def.library.function:
            functions.add(function.signature.name)
            used.update(node.op for node in function.node_def)
    foreign = sorted(op for op in used - functions
                     if not op.startswith("_") and not hasattr(tf.raw_ops, op))
    if foreign:
        raise ExportError(
            f"model: the serving graph uses ops outside core TensorFlow "
            f"({', '.join(foreign)}); TF Serving cannot load them. Keep "
            f"tensorflow-text (e.g. text augmentation) out of the served model")


def _serving_info(model_name, version, signature, label_names, task, preprocessing):
    k = len(label_names)
    inputs = {}
    for name, spec in signature.items():
        inputs[name] = {"shape": list(spec.shape.as_list()), "dtype": spec.dtype.name}
        steps = list(preprocessing.get(name, []))
        if spec.dtype == tf.uint8:
            steps.append({"by": "model", "step": UINT8_STEP})
        if steps:
            inputs[name]["preprocessing"] = steps
    return {
        "model_name": model_name,
        "version": version,
        "signature": SIGNATURE_NAME,
        "inputs": inputs,
        "outputs": {
            "probabilities": {"shape": [None, k], "dtype": "float32",
                              "activation": task.activation},
            "predictions": {
                "shape": [None, k] if task.multilabel else [None], "dtype": "int64",
                "meaning": task.prediction_meaning()},
        },
        "label_names": list(label_names),
        "labels_file": LABELS_FILE,
        "multilabel": task.multilabel,
        "threshold": task.threshold,
        "ssnas_tf_version": __version__,
    }


def _rename_no_overwrite(src, dst):
    # rename(2) replaces an empty directory but fails on a non-empty one, so a
    # version written meanwhile by another process is never clobbered.
    if os.path.lexists(dst):
        raise FileExistsError(f"{dst}: version directory appeared during export; "
                              f"versions are never overwritten")
    try:
        os.replace(src, dst)
    except OSError as err:
        if err.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR, errno.ENOTDIR):
            raise FileExistsError(
                f"{dst}: version directory appeared during export; versions are "
                f"never overwritten") from None
        raise
