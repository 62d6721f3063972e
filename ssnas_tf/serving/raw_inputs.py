"""The served inputs of a classifier: one per modality, one per table column.

A classifier takes one tensor per modality; a `tabular` modality is the
(N, C) array of `ssnas_tf.data.tabular`. A client holds the raw columns, so
`serving_inputs` puts a `TabularColumns` front before the classifier: the
export then takes one named input per table column (float32 with NaN meaning
missing for a numeric column, string for a categorical one) and every other
modality as before (`audio` as its float32 waveform, which the model turns
into a log-mel spectrogram).
"""

from typing import Dict

import keras
import numpy as np

from ssnas_tf.data.audio import SAMPLE_RATE_KEY
from ssnas_tf.data.tabular import (CATEGORICAL, COLUMNS_KEY, NUM_BUCKETS, NUMERIC,
                                   STRINGS_KEY, TABULAR, TabularColumns)
from ssnas_tf.serving.preprocessing import describe_inputs, vocabulary_files
from ssnas_tf.serving.requests import warmup_samples

NUMERIC_STEPS = [
    {"by": "client", "step": "send the number as float32; NaN for a missing value"},
    {"by": "model", "step": "normalised with the mean and std of the training rows; "
                            "a missing value becomes 0 plus a missing-indicator feature"}]
CATEGORICAL_STEPS = [
    {"by": "client", "step": "send the cell's text as it is (an empty cell is '')"},
    {"by": "model", "step": f"hashed into {NUM_BUCKETS} buckets with "
                            f"tf.strings.to_hash_bucket_fast, one-hot"}]


def serving_dtype(array, kind):
    """The dtype a modality is served in."""
    if kind == "text":
        return "string"
    if kind in ("image", "spectrogram") and array.dtype == np.uint8:
        return "uint8"
    if kind == "sequence":
        return "int32"
    return "float32"


def table_columns(dataset, modality):
    """The `{"name", "input", "type"}` entries of a tabular modality's columns."""
    if modality == TABULAR and COLUMNS_KEY in dataset.extras:
        return list(dataset.extras[COLUMNS_KEY])
    width = dataset.inputs[modality].shape[1]
    return [{"name": f"{modality}_{i}", "input": f"{modality}_{i}", "type": NUMERIC}
            for i in range(width)]


def serving_inputs(classifier, dataset, test_index) -> Dict[str, object]:
    """What `export_classifier` needs to serve `classifier` on raw inputs.

    Args:
        classifier: a Keras model taking a dict modality -> tensor.
        dataset: the `MultimodalDataset` it was trained on.
        test_index: held-out rows for the warm-up requests.

    Returns:
        A dict with `model` (the classifier, behind a `TabularColumns` front
        when it reads a tabular modality), `input_specs`, `preprocessing`,
        `extra_files`, `warmup_inputs`, `nan_inputs` and `input_attributes`:
        the keyword arguments of `export_classifier` of the same names.
    """
    modalities = list(classifier.input)
    plain = [m for m in modalities if dataset.kinds[m] != "tabular"]
    specs = {}
    for name in modalities:
        array, kind = dataset.inputs[name], dataset.kinds[name]
        if kind == "tabular":
            for column in table_columns(dataset, name):
                specs[column["input"]] = ((), "string" if column["type"] == CATEGORICAL
                                          else "float32")
        else:
            specs[name] = (array.shape[1:], serving_dtype(array, kind))
    plain_specs = {m: specs[m] for m in plain}
    preprocessing = describe_inputs(dataset, plain_specs)
    attributes, nan_inputs = {}, []
    for name in plain:
        if dataset.kinds[name] == "audio":
            attributes[name] = {"sample_rate": dataset.extras.get(SAMPLE_RATE_KEY)}
    warmup = warmup_samples(dataset, test_index, plain_specs)
    tables = [m for m in modalities if dataset.kinds[m] == "tabular"]
    for name in tables:
        columns = table_columns(dataset, name)
        for j, column in enumerate(columns):
            numeric = column["type"] == NUMERIC
            preprocessing[column["input"]] = list(NUMERIC_STEPS if numeric
                                                  else CATEGORICAL_STEPS)
            attributes[column["input"]] = {"column": column["name"], "modality": name,
                                           "type": column["type"]}
            if numeric:
                nan_inputs.append(column["input"])
        if warmup is not None:
            warmup = _table_warmup(dataset, name, columns, test_index, warmup)
    return {"model": _front(classifier, dataset, tables) if tables else classifier,
            "input_specs": specs, "preprocessing": preprocessing,
            "extra_files": vocabulary_files(dataset, plain_specs),
            "warmup_inputs": warmup, "nan_inputs": nan_inputs,
            "input_attributes": attributes}


def _table_warmup(dataset, name, columns, test_index, warmup, count=8):
    index = np.asarray(test_index, dtype=np.int64)[:count]
    strings = dataset.extras.get(STRINGS_KEY) if name == TABULAR else None
    if not len(index) or (strings is None and any(c["type"] == CATEGORICAL
                                                  for c in columns)):
        return None
    k = 0
    for j, column in enumerate(columns):
        if column["type"] == CATEGORICAL:
            warmup[column["input"]] = np.array(
                [str(v).encode("utf-8") for v in strings[index, k]], dtype=object)
            k += 1
        else:
            warmup[column["input"]] = np.asarray(dataset.inputs[name][index, j],
                                                 dtype=np.float32)
    return warmup


def _front(classifier, dataset, tables):
    """The classifier behind a `TabularColumns` layer per tabular modality."""
    inputs, feeds = {}, {}
    for name, spec in classifier.input.items():
        if name not in tables:
            inputs[name] = feeds[name] = keras.Input(spec.shape[1:], dtype=spec.dtype,
                                                     name=name)
            continue
        columns = table_columns(dataset, name)
        column_inputs = []
        for column in columns:
            dtype = "string" if column["type"] == CATEGORICAL else "float32"
            inputs[column["input"]] = keras.Input((), dtype=dtype, name=column["input"])
            column_inputs.append(inputs[column["input"]])
        feeds[name] = TabularColumns([c["type"] for c in columns], NUM_BUCKETS,
                                     name=f"{name}_columns")(column_inputs)
    return keras.Model(inputs, classifier(feeds), name=f"{classifier.name}_raw_columns")


__all__ = ["serving_dtype", "serving_inputs", "table_columns"]
