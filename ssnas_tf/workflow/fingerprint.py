"""A dataset's fingerprint: what a run's splits were drawn from.

`Run.start` stores the fingerprint in `splits.json` beside the split indices;
every later step recomputes it from the data that loads now and refuses to run
when they differ, so changed data can never move test samples into training.

The fingerprint holds digests of what the steps use (sample count, labels,
label names, each modality's array, the dataset's own splits, side data such as
vocabularies) and, for the error message, the state of the source files: size
and modification time of the files under `data_dir`, and the SHA-256 of the
embedded mfeat npz. Source files alone never fail a run: a copied or touched
file that loads to the same arrays is the same data.
"""

import hashlib
import json
import os

import warnings

import numpy as np

from ssnas_tf.data.prepared import PREPARED_DIR
from ssnas_tf.data.splits import RunSplits
from ssnas_tf.errors import RunError

# Directory listings larger than this are summarised by a digest, not stored.
_MAX_LISTED_FILES = 20


def _update(h, array):
    if hasattr(array, "digest"):  # rows on disk (`data.prepared.RowFile`): not read
        h.update(f"{array.dtype.str}{array.shape}{array.digest()}".encode())
        return
    array = np.asarray(array)
    h.update(f"{array.dtype.str}{array.shape}".encode())
    if array.dtype == object:  # raw text: length-prefixed UTF-8 strings
        for item in array.ravel():
            data = str(item).encode("utf-8")
            h.update(len(data).to_bytes(8, "little") + data)
    else:
        h.update(memoryview(np.ascontiguousarray(array)).cast("B"))


def array_digest(array):
    """SHA-256 of an array's dtype, shape and values (object arrays as str)."""
    h = hashlib.sha256()
    _update(h, array)
    return h.hexdigest()


def _extras_digest(extras):
    h = hashlib.sha256()
    for key in sorted(extras):
        h.update(str(key).encode())
        value = extras[key]
        if isinstance(value, np.ndarray):
            _update(h, value)
        else:
            h.update(json.dumps(value, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _file_state(path, content_hash=False):
    stat = os.stat(path)
    state = {"path": os.path.abspath(path), "size": stat.st_size,
             "mtime_ns": stat.st_mtime_ns}
    if content_hash:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        state["sha256"] = h.hexdigest()
    return state


def source_files(data_dir, embedded=None):
    """Size and mtime of the files under `data_dir` (a file or a folder).

    Args:
        data_dir: the run's data_dir, or None.
        embedded: a file shipped with the package that the loader reads when
            `data_dir` is None (hashed: it is small). Defaults to None.
    """
    if data_dir is None:
        return [_file_state(embedded, content_hash=True)] if embedded else []
    data_dir = os.path.expanduser(str(data_dir))
    if os.path.isfile(data_dir):
        return [_file_state(data_dir)]
    if not os.path.isdir(data_dir):
        return []
    files = sorted(os.path.join(folder, name) for folder, _, names in os.walk(data_dir)
                   for name in names
                   # Prepared copies (`data.prepared`) are derived, not source.
                   if PREPARED_DIR not in os.path.relpath(folder, data_dir).split(os.sep))
    states = [_file_state(path) for path in files]
    if len(states) <= _MAX_LISTED_FILES:
        return states
    digest = hashlib.sha256(json.dumps(states).encode()).hexdigest()
    return [{"path": os.path.abspath(data_dir), "files": len(states),
             "size": sum(s["size"] for s in states),
             "mtime_ns": max(s["mtime_ns"] for s in states), "listing_sha256": digest}]


def dataset_fingerprint(dataset, sources=()):
    """A JSON-able fingerprint of a `MultimodalDataset`.

    Args:
        dataset: the loaded dataset.
        sources: `source_files(...)` of the files it was loaded from.
            Defaults to ().
    """
    return {
        "name": dataset.name,
        "num_samples": int(dataset.num_samples),
        "label_names": array_digest(np.asarray([str(n) for n in dataset.label_names],
                                               dtype=object)),
        "labels": array_digest(dataset.labels),
        "inputs": {name: array_digest(array) for name, array in dataset.inputs.items()},
        "splits": {name: array_digest(np.sort(np.asarray(index, np.int64)))
                   for name, index in sorted(dataset.splits.items())},
        "extras": _extras_digest(dataset.extras or {}),
        "sources": list(sources),
    }


def fingerprint_changes(recorded, current):
    """What differs between two fingerprints, as short phrases ([] if the same
    data). Source files are reported only when the data differs too."""
    changes = []
    if recorded.get("num_samples") != current["num_samples"]:
        changes.append(f"number of samples {recorded.get('num_samples')} -> "
                       f"{current['num_samples']}")
    for key, what in (("name", "dataset name"), ("labels", "labels"),
                      ("label_names", "label names"), ("extras", "side data (vocabulary, "
                                                                "embeddings)")):
        if recorded.get(key) != current[key]:
            changes.append(f"{what} changed")
    changes += _dict_changes(recorded.get("inputs", {}), current["inputs"], "modality")
    changes += _dict_changes(recorded.get("splits", {}), current["splits"],
                             "the dataset's own split")
    if changes:
        moved = _source_changes(recorded.get("sources", []), current["sources"])
        changes += moved
    return changes


def _dict_changes(recorded, current, what):
    out = []
    for name in sorted(set(recorded) | set(current)):
        if name not in current:
            out.append(f"{what} '{name}' is gone")
        elif name not in recorded:
            out.append(f"{what} '{name}' is new")
        elif recorded[name] != current[name]:
            out.append(f"{what} '{name}' changed")
    return out


def _source_changes(recorded, current):
    before = {s["path"]: s for s in recorded}
    after = {s["path"]: s for s in current}
    out = []
    for path in sorted(set(before) | set(after)):
        if path not in after:
            out.append(f"source {path} is gone")
        elif path not in before:
            out.append(f"source {path} is new")
        elif before[path] != after[path]:
            fields = [k for k in after[path] if before[path].get(k) != after[path][k]]
            out.append(f"source {path} changed ({', '.join(fields)})")
    return out


def read_run_splits(path, dataset, current_fingerprint, name):
    """A run's splits.json, checked against the data that loads now.

    Args:
        path: the run's splits.json.
        dataset: the `MultimodalDataset` that loads now.
        current_fingerprint: `current_fingerprint()` gives its fingerprint
            (called only when splits.json records one).
        name: the dataset's name, for messages.

    Raises:
        RunError: splits.json is missing or malformed, or the data changed
            since the splits were drawn (the message names the changes).
    """
    if not os.path.exists(path):
        raise RunError(f"{path} not found: start the run with `ssnas run` or "
                       f"`ssnas search`")
    try:
        with open(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise RunError(f"{path}: malformed JSON ({err})") from None
    recorded = data.get("fingerprint") if isinstance(data, dict) else None
    if recorded is None:
        warnings.warn(f"{path} has no dataset fingerprint (an older run): the "
                      f"data cannot be checked against the splits", RuntimeWarning)
    else:
        changes = fingerprint_changes(recorded, current_fingerprint())
        if changes:
            raise RunError(
                f"{path}: the {name} data that loads now is not the "
                f"data this run's splits were drawn from: {'; '.join(changes)}. "
                f"Restore the data, or start a new run (--overwrite)")
    return RunSplits.from_dict(data, dataset.num_samples, source=path)
