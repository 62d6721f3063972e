"""Data you already hold, as a `MultimodalDataset`: arrays, a DataFrame, a tf.data.Dataset.

`as_dataset` is the one conversion behind `Run(directory, config, dataset=...)`
and the `npz` loader (`load_dataset("npz", data_dir=FILE)`,
`ssnas run --dataset npz --data-dir FILE.npz`). It accepts:

- a `MultimodalDataset`: returned unchanged;
- a dict of NumPy arrays, one row per sample, with the labels passed as
  `labels=` or held under the key `label` (class ids or class names, (N,)) or
  `labels` ((N, K) multi-hot for multi-label data), and optional class names
  under `label_names`;
- a pandas `DataFrame`: the `label` (or `labels`, `|`-separated names for
  multi-label data) column gives the labels, a `text` column the `text`
  modality, a `split` column the split (train, valid, test), an `id` column is
  left out, and every other column is a feature of ONE `tabular` modality
  (`ssnas_tf.data.tabular`: numbers, NaN = missing, and strings as
  categories; normalised inside the backbone on the training rows);
- a `tf.data.Dataset` of `(features_dict, label)` elements, batched or not: it
  is read once, batch by batch, into one array per feature (the dataset itself
  is not kept, so the data is held once, as arrays).

Kinds are inferred from dtype and rank unless `kinds=` names them:

| array                           | kind     |
|---------------------------------|----------|
| uint8 or float (N, H, W, C)     | `image` (float values in [0, 1]) |
| float or bool (N, D)            | `vector` |
| integer (N, T)                  | `sequence` (token ids, 0 = padding) |
| str, bytes or object (N,)       | `text`   |

A `spectrogram` ((N, T, F, 1)), an `audio` waveform ((N, L) float32 in
[-1, 1]; set `extras["audio_sample_rate"]` on the result) and a `tabular`
array are never inferred: name them in `kinds` (a DataFrame's `tabular` is). Every
error is a `DataError` naming the array, column or shape at fault.
"""

from typing import Dict, Mapping, Optional, Sequence

import numpy as np

from ssnas_tf.data.base import MultimodalDataset, SPLIT_NAMES
from ssnas_tf.data.tabular import COLUMNS_KEY, STRINGS_KEY, TABULAR, build_table
from ssnas_tf.errors import DataError
from ssnas_tf.modalities import MODALITY_KINDS

LABEL_KEYS = ("label", "labels")
LABEL_NAMES_KEY = "label_names"
READ_BATCH = 1024  # rows per batch when an unbatched tf.data.Dataset is read


def as_dataset(data, labels=None, kinds: Optional[Mapping[str, str]] = None,
               label_names: Optional[Sequence[str]] = None,
               name: str = "custom") -> MultimodalDataset:
    """Your data as a `MultimodalDataset`.

    Args:
        data: a `MultimodalDataset` (returned unchanged), a dict of NumPy
            arrays (one row per sample), a pandas `DataFrame`, or a
            `tf.data.Dataset` of `(features_dict, label)`; see the module doc.
        labels: (N,) class ids or class names, or (N, K) multi-hot; None to
            take them from the data (`label` / `labels` key or column, or the
            tf.data elements). Defaults to None.
        kinds: modality name -> kind, for the modalities whose inferred kind
            is wrong (e.g. `{"mel": "spectrogram"}`). Defaults to None.
        label_names: one name per class; None to take them from the data
            (`label_names` key, or the sorted names of string labels) or to
            number the classes "0", "1", ... Defaults to None.
        name: the dataset name (`RunConfig.dataset` of a run on it).
            Defaults to "custom".

    Returns:
        A `MultimodalDataset` with float32 vectors, int32 sequences, uint8 or
        float32 images and object arrays of str for text.

    Raises:
        DataError: no modalities, missing labels, rows that do not match,
            an array whose dtype or shape fits no kind, NaN or infinite
            values, labels out of range.
    """
    if isinstance(data, MultimodalDataset):
        return data
    extras, splits = {}, {}
    if _is_dataframe(data):
        arrays, found_labels, found_names, found_kinds, extras, splits = \
            _from_dataframe(data, name)
        kinds = {**found_kinds, **(kinds or {})}
        if label_names is None:
            label_names = found_names
    elif _is_tf_dataset(data):
        arrays, found_labels = _from_tf_dataset(data, name)
    elif isinstance(data, Mapping):
        arrays = {str(k): v for k, v in data.items()}
        found_labels = None
        for key in LABEL_KEYS:
            if key in arrays:
                found_labels = arrays.pop(key)
                break
        if LABEL_NAMES_KEY in arrays:
            names = arrays.pop(LABEL_NAMES_KEY)
            if label_names is None:
                label_names = [_to_str(v) for v in np.asarray(names).ravel()]
    else:
        raise DataError(
            f"{name}: cannot read data of type {type(data).__name__}; pass a dict "
            f"of NumPy arrays, a pandas DataFrame, a tf.data.Dataset of "
            f"(features_dict, label) or a MultimodalDataset")
    if labels is None:
        labels = found_labels
    if labels is None:
        raise DataError(
            f"{name}: no labels: pass labels=..., or add a 'label' (class ids or "
            f"names, (N,)) or 'labels' ((N, K) multi-hot) array")
    if not arrays:
        raise DataError(f"{name}: no modalities: the data holds only labels")
    kinds = dict(kinds or {})
    unknown = sorted(set(kinds) - set(arrays))
    if unknown:
        raise DataError(f"{name}: kinds= names {unknown}, which are not in the data "
                        f"(modalities: {sorted(arrays)})")
    label_array, label_names, multilabel = _labels(labels, label_names, name)
    n = len(label_array)
    inputs, kind_of = {}, {}
    for key, value in arrays.items():
        array = np.asarray(value)
        if array.ndim == 0 or len(array) != n:
            rows = "a scalar" if array.ndim == 0 else f"{len(array)} rows"
            raise DataError(f"{name}: array '{key}' (shape {array.shape}) has {rows} "
                            f"but there are {n} labels")
        kind = kinds.get(key) or _infer_kind(key, array, name)
        inputs[key] = _convert(key, array, kind, name)
        kind_of[key] = kind
    return MultimodalDataset(name=name, inputs=inputs, kinds=kind_of, labels=label_array,
                             label_names=label_names, multilabel=multilabel,
                             splits=splits, extras=extras)


def _is_dataframe(data) -> bool:
    return (type(data).__module__.startswith("pandas")
            and hasattr(data, "columns") and hasattr(data, "dtypes"))


def _is_tf_dataset(data) -> bool:
    return hasattr(data, "element_spec") and hasattr(data, "as_numpy_iterator")


def _to_str(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _is_text(array: np.ndarray) -> bool:
    if array.dtype.kind in "US":
        return True
    return array.dtype == object and all(isinstance(v, (str, bytes)) for v in array.ravel())


def _infer_kind(key: str, array: np.ndarray, name: str) -> str:
    if array.ndim == 1 and _is_text(array):
        return "text"
    if array.ndim == 4 and (array.dtype == np.uint8 or array.dtype.kind == "f"):
        return "image"
    if array.ndim == 2 and array.dtype.kind in "fb":
        return "vector"
    if array.ndim == 2 and array.dtype.kind in "iu":
        return "sequence"
    hint = ""
    if array.ndim == 1 and array.dtype.kind in "biuf":
        hint = f"; a single feature is a (N, 1) vector: {key}[:, None]"
    elif array.ndim == 3:
        hint = "; images need a channel axis: (N, H, W, 1)"
    raise DataError(
        f"{name}: array '{key}' has dtype {array.dtype} and shape {array.shape}, "
        f"which fits no kind (uint8/float (N, H, W, C) image, float (N, D) vector, "
        f"int (N, T) sequence, str (N,) text){hint}; or name its kind in kinds=")


def _convert(key: str, array: np.ndarray, kind: str, name: str) -> np.ndarray:
    where = f"{name}: array '{key}' (kind {kind}, dtype {array.dtype}, shape {array.shape})"
    if kind not in MODALITY_KINDS:
        raise DataError(f"{where}: unknown kind; expected one of {MODALITY_KINDS}")
    if kind == "text":
        if array.ndim != 1 or not _is_text(array):
            raise DataError(f"{where}: text must be (N,) strings")
        return np.array([_to_str(v) for v in array], dtype=object)
    rank = {"image": 4, "spectrogram": 4, "vector": 2, "sequence": 2, "tabular": 2,
            "audio": 2}[kind]
    if kind == "spectrogram" and array.ndim == 3:
        array = array[..., None]
    if array.ndim != rank or array.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected a numeric array of rank {rank}")
    if kind == "spectrogram" and array.shape[-1] != 1:
        raise DataError(f"{where}: a spectrogram is (N, T, F, 1)")
    if kind == "sequence":
        if array.dtype.kind not in "iu":
            raise DataError(f"{where}: token ids must be integers")
        if array.size and array.min() < 0:
            raise DataError(f"{where}: negative token id {array.min()}")
        return array.astype(np.int32)
    if kind in ("image", "spectrogram") and array.dtype == np.uint8:
        return array
    array = array.astype(np.float32)
    if kind == "audio" and array.size and np.nanmax(np.abs(array)) > 1:
        raise DataError(f"{where}: audio waveforms must lie in [-1, 1]")
    # A tabular array marks missing values with NaN.
    bad = np.isinf(array) if kind == "tabular" else ~np.isfinite(array)
    if bad.any():
        row = int(np.argwhere(bad)[0][0])
        raise DataError(f"{where}: {int(bad.sum())} NaN or infinite values (first in row "
                        f"{row})")
    if kind in ("image", "spectrogram") and array.size and (array.min() < 0
                                                              or array.max() > 1):
        raise DataError(f"{where}: float values must lie in [0, 1] (found "
                        f"[{array.min():g}, {array.max():g}]); pass uint8 0-255 instead")
    return array


def _labels(labels, label_names, name):
    """(labels array, label names, multilabel) from class ids, names or multi-hot."""
    labels = np.asarray(labels)
    if labels.ndim == 0 or len(labels) == 0:
        raise DataError(f"{name}: labels have shape {labels.shape}; expected (N,) or (N, K)")
    if labels.ndim == 2:
        if labels.dtype.kind not in "biuf" or not np.isin(labels, (0, 1)).all():
            raise DataError(f"{name}: (N, K) labels must be multi-hot 0/1 values")
        k = labels.shape[1]
        names = list(label_names) if label_names is not None else [str(i) for i in range(k)]
        if len(names) != k:
            raise DataError(f"{name}: labels have {k} columns but {len(names)} label names")
        return labels.astype(np.int64), tuple(_to_str(v) for v in names), True
    if labels.ndim != 1:
        raise DataError(f"{name}: labels have shape {labels.shape}; expected (N,) or (N, K)")
    if _is_text(labels):
        values = [_to_str(v) for v in labels]
        names = list(label_names) if label_names is not None else sorted(set(values))
        index = {v: i for i, v in enumerate(names)}
        missing = sorted(set(values) - set(index))
        if missing:
            raise DataError(f"{name}: labels {missing[:5]} are not in label_names")
        return np.array([index[v] for v in values], dtype=np.int64), tuple(names), False
    if labels.dtype.kind == "f":
        if not np.isfinite(labels).all() or (labels != np.round(labels)).any():
            raise DataError(f"{name}: labels must be whole class ids; found NaN or "
                            f"fractions")
    elif labels.dtype.kind not in "iu":
        raise DataError(f"{name}: labels of dtype {labels.dtype}; expected class ids "
                        f"or names")
    labels = labels.astype(np.int64)
    if labels.min() < 0:
        raise DataError(f"{name}: negative class id {labels.min()} in labels")
    k = int(labels.max()) + 1
    names = list(label_names) if label_names is not None else [str(i) for i in range(k)]
    if k > len(names):
        raise DataError(f"{name}: class id {k - 1} in labels but only {len(names)} "
                        f"label names")
    return labels, tuple(_to_str(v) for v in names), False


def _from_dataframe(frame, name):
    """(arrays, labels, label names, kinds, extras, splits) of a DataFrame."""
    columns = [str(c) for c in frame.columns]
    label_column = next((c for c in LABEL_KEYS if c in columns), None)
    labels = names = None
    if label_column == "labels":
        rows = [str(v).split("|") for v in frame["labels"]]
        names = sorted({n for row in rows for n in row if n})
        labels = np.array([[n in row for n in names] for row in rows], dtype=np.int64)
    elif label_column == "label":
        labels = frame["label"].to_numpy()
    arrays: Dict[str, np.ndarray] = {}
    kinds, extras, splits = {}, {}, {}
    table = {}
    for column in columns:
        if column == label_column or column == "id":
            continue
        values = frame[column].to_numpy()
        if column in ("image", "audio"):
            raise DataError(f"{name}: a DataFrame column '{column}' is not read; "
                            f"pass {column}s as arrays (a dict) or use the csv loader")
        if values.dtype.kind not in "biufOUS":
            raise DataError(f"{name}: column '{column}' has dtype {values.dtype}; "
                            f"expected numbers or strings")
        if column == "text":
            if not _is_text(values):
                raise DataError(f"{name}: column 'text' must hold strings")
            arrays["text"], kinds["text"] = values, "text"
        elif column == "split":
            found = np.array([_to_str(v).strip().lower() for v in values])
            unknown = sorted(set(found) - set(SPLIT_NAMES))
            if unknown:
                raise DataError(f"{name}: column 'split' holds {unknown[:3]}; expected "
                                f"{', '.join(SPLIT_NAMES)}")
            splits = {s: np.flatnonzero(found == s).astype(np.int64)
                      for s in SPLIT_NAMES if np.any(found == s)}
        else:
            if values.dtype.kind in "fc" and np.isinf(values).any():
                raise DataError(f"{name}: column '{column}' has {int(np.isinf(values).sum())} "
                                f"infinite values (NaN marks a missing value)")
            if values.dtype.kind == "O" and not all(
                    v is None or isinstance(v, (str, bytes, int, float, np.number))
                    for v in values):
                raise DataError(f"{name}: column '{column}' has dtype {values.dtype}; "
                                f"expected numbers or strings")
            table[column] = values
    if table:
        array, entries, strings = build_table(table, taken=list(arrays))
        arrays[TABULAR], kinds[TABULAR] = array, "tabular"
        extras = {COLUMNS_KEY: entries, STRINGS_KEY: strings}
    return arrays, labels, names, kinds, extras, splits


def _from_tf_dataset(dataset, name):
    spec = dataset.element_spec
    if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], dict)):
        raise DataError(f"{name}: a tf.data.Dataset must yield (features_dict, label) "
                        f"pairs; its element_spec is {spec}")
    if int(dataset.cardinality()) == -1:  # tf.data.INFINITE_CARDINALITY
        raise DataError(f"{name}: the tf.data.Dataset never ends (.repeat()?); pass "
                        f"one pass over the data")
    label_shape = spec[1].shape
    if label_shape.rank == 0 or (label_shape.rank and label_shape[0] is not None):
        dataset = dataset.batch(READ_BATCH)  # unbatched elements
    parts: Dict[str, list] = {key: [] for key in spec[0]}
    label_parts = []
    for features, label in dataset.as_numpy_iterator():
        for key in parts:
            parts[key].append(features[key])
        label_parts.append(label)
    if not label_parts:
        raise DataError(f"{name}: the tf.data.Dataset yields no elements")
    arrays = {}
    for key in list(parts):
        arrays[key] = np.concatenate(parts.pop(key))
    return arrays, np.concatenate(label_parts)


def load_npz(data_dir=None, kinds=None, name="npz"):
    """A `.npz` of named arrays as a dataset (`load_dataset("npz", data_dir=...)`).

    Args:
        data_dir: the `.npz` file, or a folder holding exactly one.
        kinds: modality name -> kind, for arrays whose inferred kind is wrong
            (`--dataset-option kinds='{"mel": "spectrogram"}'`). Defaults to None.
        name: the dataset name. Defaults to "npz".

    Returns:
        A `MultimodalDataset` made by `as_dataset` from the file's arrays: one
        row per sample, labels under `label` or `labels`, class names
        optionally under `label_names`.

    Raises:
        DataError: no such file, not an npz, or arrays `as_dataset` rejects.
    """
    import os
    import zipfile

    if data_dir is None:
        raise DataError("npz: --data-dir (data_dir) must name a .npz file or a folder "
                        "holding one")
    path = str(data_dir)
    if os.path.isdir(path):
        found = sorted(f for f in os.listdir(path) if f.endswith(".npz"))
        if len(found) != 1:
            raise DataError(f"npz: folder {path} holds {len(found)} .npz files "
                            f"({found[:5]}); expected exactly one: name the file")
        path = os.path.join(path, found[0])
    if not os.path.isfile(path):
        raise DataError(f"npz: {path} not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"npz: cannot read {path} as a .npz of arrays: {error}") from None
    if not any(key in arrays for key in LABEL_KEYS):
        raise DataError(f"npz: {path} has no 'label' or 'labels' array (arrays: "
                        f"{sorted(arrays)})")
    try:
        return as_dataset(arrays, kinds=kinds, name=name)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
