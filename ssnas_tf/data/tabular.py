"""Table columns as one `tabular` modality, and the layers that encode them.

A table's feature columns (numbers and strings) become ONE modality of kind
`tabular`: a float32 (N, C) array, one column per table column, in which

- a numeric column holds its raw values, NaN where the cell is missing
  (empty, `nan`, `NA`);
- a categorical (string) column holds the string's hash bucket,
  `tf.strings.to_hash_bucket_fast(value, num_buckets)` as a float (an empty
  cell is the category "").

The column list (`dataset.extras["tabular_columns"]`: name, serving input name
and type per column) travels with the data. Two Keras layers do the rest:

- `TabularEncoder` (the first layer of the `tabular` backbone): numeric
  columns normalised with the mean and std of the TRAINING rows (`adapt`),
  missing values set to 0 plus one missing-indicator feature per numeric
  column, categorical columns one-hot over the buckets.
- `TabularColumns` (the front of an export): one raw input per column
  (float32 with NaN meaning missing, or string) -> the (N, C) array, with the
  same hashing as `encode_columns`, so a served model takes the raw columns.

Only core TensorFlow ops are used, so the export loads in TF Serving.
"""

import math
import re
from typing import Dict, List, Mapping, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ssnas_tf.errors import DataError

TABULAR = "tabular"  # the modality name of a table's feature columns
NUM_BUCKETS = 32  # hash buckets per categorical column
NUMERIC, CATEGORICAL = "numeric", "categorical"
COLUMNS_KEY = "tabular_columns"  # extras key: [{"name", "input", "type"}, ...]
STRINGS_KEY = "tabular_strings"  # extras key: object (N, categorical) raw categories
# Columns that are never table features (CSV and DataFrame alike).
RESERVED_COLUMNS = ("image", "audio", "text", "label", "labels", "split", "id")
MISSING_TEXT = ("", "nan", "na", "n/a", "null", "none")  # numeric cells read as NaN
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def hash_strings(values, num_buckets: int = NUM_BUCKETS):
    """String tensor -> float32 bucket ids (the one hashing of training and serving)."""
    return tf.cast(tf.strings.to_hash_bucket_fast(values, num_buckets), tf.float32)


def parse_number(text: str) -> float:
    """A numeric cell: NaN for a missing one; raises ValueError if not a number."""
    text = text.strip()
    if text.lower() in MISSING_TEXT:
        return float("nan")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text!r} is not a finite number")
    return value


def _number(value) -> float:
    """A cell of any type as a number (NaN = missing); ValueError if it is none."""
    if value is None:
        return float("nan")
    if isinstance(value, (str, bytes)):
        return parse_number(value.decode("utf-8") if isinstance(value, bytes) else value)
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        if math.isinf(value):
            raise ValueError(f"{value!r} is not a finite number")
        return float(value)
    raise ValueError(f"{value!r} is not a number")


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def build_table(values: Mapping[str, Sequence], categorical: Sequence[str] = (),
                taken: Sequence[str] = (), num_buckets: int = NUM_BUCKETS):
    """Raw columns -> the `tabular` array, its column entries and its strings.

    A column is numeric when every cell is a finite number or missing (empty,
    `nan`, `NA`, None, NaN) and it is not named in `categorical`; otherwise
    its cells are categories (strings; a missing cell is "").

    Args:
        values: column name -> (N,) cells (str, numbers or None), in order.
        categorical: columns to treat as categories even if numeric.
        taken: serving input names already used (other modalities).
        num_buckets: hash buckets per categorical column. Defaults to 32.

    Returns:
        `(array float32 (N, C), entries for extras["tabular_columns"],
        object (N, categorical columns) array of the category strings)`.
    """
    types, cells = {}, {}
    for name, column in values.items():
        column = list(column)
        if name not in categorical:
            try:
                cells[name] = np.array([_number(v) for v in column], dtype=np.float64)
                types[name] = NUMERIC
                continue
            except ValueError:
                pass
        cells[name] = np.array([_text(v) for v in column], dtype=object)
        types[name] = CATEGORICAL
    array = encode_columns(cells, types, num_buckets)
    strings = [cells[n] for n in cells if types[n] == CATEGORICAL]
    n = len(array)
    strings = (np.stack(strings, axis=1) if strings
               else np.zeros((n, 0), dtype=object)).astype(object)
    return array, column_entries(list(values), types, taken), strings


def input_names(columns: Sequence[str], taken: Sequence[str] = ()) -> List[str]:
    """Serving input names for table columns: the name itself when it is a valid
    signature key, else a cleaned `col_...` name; never one of `taken`."""
    used, out = set(taken), []
    for column in columns:
        name = column if _NAME.fullmatch(column) else "col_" + re.sub(
            r"[^A-Za-z0-9_]", "_", column)
        base, i = name, 2
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        out.append(name)
    return out


def encode_columns(values: Mapping[str, np.ndarray], types: Mapping[str, str],
                   num_buckets: int = NUM_BUCKETS) -> np.ndarray:
    """The (N, C) float32 `tabular` array of raw columns.

    Args:
        values: column name -> (N,) float values (NaN = missing) for numeric
            columns, (N,) strings for categorical ones; dict order = column order.
        types: column name -> "numeric" or "categorical".
        num_buckets: hash buckets of categorical columns. Defaults to 32.

    Returns:
        float32 (N, C): numeric values as given, categories as bucket ids.
    """
    out = []
    for name, column in values.items():
        if types[name] == CATEGORICAL:
            strings = np.array([str(v) for v in column], dtype=object)
            out.append(hash_strings(tf.constant(strings.astype(str)), num_buckets).numpy()
                       if len(strings) else np.zeros(0, np.float32))
        else:
            out.append(np.asarray(column, dtype=np.float32))
    return np.stack(out, axis=1).astype(np.float32)


def column_entries(names: Sequence[str], types: Mapping[str, str],
                   taken: Sequence[str] = ()) -> List[Dict[str, str]]:
    """`extras["tabular_columns"]`: name, serving input name and type per column."""
    return [{"name": n, "input": i, "type": types[n]}
            for n, i in zip(names, input_names(names, taken))]


@keras.saving.register_keras_serializable(package="ssnas_tf")
class TabularEncoder(layers.Layer):
    """Encodes a (N, C) `tabular` array into model features.

    Numeric columns: `(x - mean) / std` with the statistics of the data given
    to `adapt` (the training rows; NaN ignored), NaN -> 0, plus a 0/1
    missing-indicator feature per numeric column. Categorical columns (hash
    bucket ids): one-hot over `num_buckets`. Output: float32 (N, 2 * numeric
    columns + num_buckets * categorical columns).

    Args:
        column_types: "numeric" or "categorical" per input column, in order.
        num_buckets: hash buckets of a categorical column. Defaults to 32.

    Example:

    >>> encoder = TabularEncoder(["numeric", "categorical"], num_buckets=4)
    >>> encoder.adapt(np.array([[1.0, 2.0], [3.0, 0.0]], "float32"))
    >>> encoder(np.array([[np.nan, 1.0]], "float32")).numpy()
    array([[0., 1., 0., 1., 0., 0.]], dtype=float32)
    """

    def __init__(self, column_types, num_buckets=NUM_BUCKETS, **kwargs):
        super().__init__(**kwargs)
        self.column_types = [str(t) for t in column_types]
        bad = sorted(set(self.column_types) - {NUMERIC, CATEGORICAL})
        if bad or not self.column_types:
            raise ValueError(f"column_types must be a non-empty list of 'numeric' / "
                             f"'categorical', got {column_types!r}")
        self.num_buckets = int(num_buckets)
        self._numeric = [i for i, t in enumerate(self.column_types) if t == NUMERIC]
        self._categorical = [i for i, t in enumerate(self.column_types) if t == CATEGORICAL]
        n = len(self._numeric)
        self.mean = self.add_weight(name="mean", shape=(n,), initializer="zeros",
                                    trainable=False)
        self.std = self.add_weight(name="std", shape=(n,), initializer="ones",
                                   trainable=False)

    def adapt(self, data):
        """Sets the numeric columns' mean and std from `data` (training rows)."""
        data = np.asarray(data, dtype=np.float64).reshape(-1, len(self.column_types))
        values = data[:, self._numeric]
        mean, std = np.zeros(values.shape[1]), np.ones(values.shape[1])
        for j in range(values.shape[1]):
            seen = values[:, j][np.isfinite(values[:, j])]
            if len(seen):
                mean[j] = seen.mean()
                std[j] = seen.std() if seen.std() > 1e-6 else 1.0
        self.mean.assign(mean.astype(np.float32))
        self.std.assign(std.astype(np.float32))

    def call(self, inputs):
        x = tf.cast(inputs, tf.float32)
        parts = []
        if self._numeric:
            numbers = tf.gather(x, self._numeric, axis=1)
            missing = tf.math.is_nan(numbers)
            scaled = (numbers - tf.cast(self.mean, tf.float32)) / tf.cast(self.std,
                                                                           tf.float32)
            parts += [tf.where(missing, tf.zeros_like(scaled), scaled),
                      tf.cast(missing, tf.float32)]
        if self._categorical:
            ids = tf.gather(x, self._categorical, axis=1)
            ids = tf.where(tf.math.is_nan(ids), tf.zeros_like(ids), ids)
            ids = tf.clip_by_value(tf.cast(ids, tf.int32), 0, self.num_buckets - 1)
            hot = tf.one_hot(ids, self.num_buckets, dtype=tf.float32)
            parts.append(tf.reshape(hot, [-1, len(self._categorical) * self.num_buckets]))
        return tf.concat(parts, axis=1)

    @property
    def output_size(self):
        return 2 * len(self._numeric) + self.num_buckets * len(self._categorical)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_size)

    def get_config(self):
        config = super().get_config()
        config.update(column_types=list(self.column_types), num_buckets=self.num_buckets)
        return config


@keras.saving.register_keras_serializable(package="ssnas_tf")
class TabularColumns(layers.Layer):
    """Raw table columns -> the (N, C) `tabular` array (the serving front).

    Called on a list of (N,) tensors, one per column in order: float32
    numbers (NaN = missing) or strings, hashed like `encode_columns`.

    Args:
        column_types: "numeric" or "categorical" per column, in order.
        num_buckets: hash buckets of a categorical column. Defaults to 32.
    """

    def __init__(self, column_types, num_buckets=NUM_BUCKETS, **kwargs):
        super().__init__(**kwargs)
        self.column_types = [str(t) for t in column_types]
        self.num_buckets = int(num_buckets)

    def call(self, inputs):
        columns = []
        for kind, value in zip(self.column_types, inputs):
            value = tf.reshape(value, [-1])
            columns.append(hash_strings(value, self.num_buckets) if kind == CATEGORICAL
                           else tf.cast(value, tf.float32))
        return tf.stack(columns, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], len(self.column_types))

    def get_config(self):
        config = super().get_config()
        config.update(column_types=list(self.column_types), num_buckets=self.num_buckets)
        return config


def check_column_options(ignore, categorical, name="csv") -> tuple:
    """`ignore=` and `categorical=` options (a list or "a,b" text) as tuples."""
    out = []
    for option, value in (("ignore", ignore), ("categorical", categorical)):
        if value is None:
            value = ()
        if isinstance(value, str):
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise DataError(f"{name}: {option} must be column names ('a,b' or a list), "
                            f"got {value!r}")
        out.append(tuple(v.strip() for v in value))
    return tuple(out)


__all__ = ["CATEGORICAL", "STRINGS_KEY", "build_table", "COLUMNS_KEY", "NUMERIC", "NUM_BUCKETS", "RESERVED_COLUMNS",
           "TABULAR", "TabularColumns", "TabularEncoder", "column_entries",
           "encode_columns", "hash_strings", "input_names", "parse_number"]
