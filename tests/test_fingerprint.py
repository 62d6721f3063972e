"""The dataset fingerprint a run's splits.json holds (workflow/fingerprint.py):
the same data gives no change, and each kind of change is named."""

import dataclasses
import os

import numpy as np
import pytest

from ssnas_tf.data import load_dataset
from ssnas_tf.data.mfeat import EMBEDDED_PATH
from ssnas_tf.workflow.fingerprint import (dataset_fingerprint, fingerprint_changes,
                                           source_files)


@pytest.fixture(scope="module")
def mfeat():
    return load_dataset("mfeat")


def _changed(ds, **fields):
    return dataclasses.replace(ds, **fields)


def test_same_data_loaded_twice_has_no_changes(mfeat):
    a = dataset_fingerprint(mfeat, source_files(None, EMBEDDED_PATH))
    b = dataset_fingerprint(load_dataset("mfeat"), source_files(None, EMBEDDED_PATH))
    assert a == b and fingerprint_changes(a, b) == []
    assert a["sources"][0]["path"] == os.path.abspath(EMBEDDED_PATH)
    assert len(a["sources"][0]["sha256"]) == 64


def _swap_two_labels(labels):
    labels = labels.copy()
    first = np.flatnonzero(labels != labels[0])[0]
    labels[[0, first]] = labels[[first, 0]]
    return labels


@pytest.mark.parametrize("change, needle", [
    (lambda ds: _changed(ds, labels=_swap_two_labels(ds.labels)), "labels changed"),
    (lambda ds: ds.subset(np.arange(1, ds.num_samples)), "number of samples 2000 -> 1999"),
    (lambda ds: _changed(ds, inputs={**ds.inputs, "fou": ds.inputs["fou"] + 1e-3}),
     "modality 'fou' changed"),
    (lambda ds: _changed(ds, inputs={k: v for k, v in ds.inputs.items() if k != "mor"},
                         kinds={k: v for k, v in ds.kinds.items() if k != "mor"}),
     "modality 'mor' is gone"),
    (lambda ds: _changed(ds, label_names=("zero",) + ds.label_names[1:]),
     "label names changed"),
    (lambda ds: _changed(ds, splits={"test": np.arange(10)}),
     "the dataset's own split 'test' is new"),
])
def test_each_change_is_named(mfeat, change, needle):
    before = dataset_fingerprint(mfeat)
    changes = fingerprint_changes(before, dataset_fingerprint(change(mfeat)))
    assert any(needle in c for c in changes), changes


def test_text_modalities_are_compared_by_content():
    from ssnas_tf.data import MultimodalDataset
    def text(*words):
        return MultimodalDataset(
            name="t", inputs={"text": np.array(words, dtype=object)}, kinds={"text": "text"},
            labels=np.array([0, 1]), label_names=["a", "b"])
    same = fingerprint_changes(dataset_fingerprint(text("ab", "c")),
                               dataset_fingerprint(text("ab", "c")))
    moved = fingerprint_changes(dataset_fingerprint(text("ab", "c")),
                                dataset_fingerprint(text("a", "bc")))
    assert same == [] and moved == ["modality 'text' changed"]


def test_source_files_are_reported_only_with_a_data_change(tmp_path):
    path = tmp_path / "items.csv"
    path.write_text("text,label\nhello,a\nworld,b\n")
    first = dataset_fingerprint(load_dataset("csv", data_dir=str(path)),
                                source_files(str(path)))
    os.utime(path, ns=(1, 1))  # touched, same content: the same data
    touched = dataset_fingerprint(load_dataset("csv", data_dir=str(path)),
                                  source_files(str(path)))
    assert touched["sources"] != first["sources"]
    assert fingerprint_changes(first, touched) == []
    path.write_text("text,label\nhello,b\nworld,a\n")
    edited = dataset_fingerprint(load_dataset("csv", data_dir=str(path)),
                                 source_files(str(path)))
    changes = fingerprint_changes(first, edited)
    assert "labels changed" in changes
    assert any(c.startswith(f"source {path} changed") and "mtime_ns" in c for c in changes)


def test_large_folders_are_summarised(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i}.txt").write_text(str(i))
    (summary,) = source_files(str(tmp_path))
    assert summary["files"] == 30 and summary["size"] == sum(len(str(i)) for i in range(30))
    (tmp_path / "f3.txt").write_text("33")
    assert source_files(str(tmp_path))[0]["listing_sha256"] != summary["listing_sha256"]
