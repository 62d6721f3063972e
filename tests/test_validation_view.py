"""`data.validation.validation_view`: the non-test samples, a held-out part as test."""

import numpy as np
import pytest

from ssnas_tf.data import DataError, load_dataset
from ssnas_tf.data.base import MultimodalDataset
from ssnas_tf.data.validation import validation_view


def _dataset(n=200, with_test=True):
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 4
    splits = {"test": np.arange(0, n, 5)} if with_test else {}
    # Each row remembers its index, so a view's rows can be traced back.
    return MultimodalDataset("toy", {"x": np.arange(n, dtype=np.float32)[:, None]
                                     + rng.normal(0, 1e-3, (n, 1)).astype(np.float32)},
                             {"x": "vector"}, labels, ("a", "b", "c", "d"), splits=splits)


def test_the_test_split_is_left_out_and_a_stratified_part_held_out():
    ds = _dataset()
    view = validation_view(ds, fraction=0.25, seed=1)
    rows = np.rint(view.inputs["x"][:, 0]).astype(int)
    assert view.num_samples == 160 and not set(rows) & set(ds.splits["test"])
    held = view.splits["test"]
    assert len(held) == 40 and list(view.splits) == ["test"]
    assert np.bincount(view.labels[held]).tolist() == [10, 10, 10, 10]
    assert np.array_equal(view.labels, ds.labels[rows])
    same = validation_view(ds, fraction=0.25, seed=1).splits["test"]
    other = validation_view(ds, fraction=0.25, seed=2).splits["test"]
    assert np.array_equal(same, held) and not np.array_equal(other, held)


def test_explicit_test_samples_for_a_dataset_without_a_split():
    ds = _dataset(with_test=False)
    with pytest.raises(DataError, match="no test split of its own"):
        validation_view(ds)
    view = validation_view(ds, test=np.arange(100))
    assert view.num_samples == 100
    assert np.rint(view.inputs["x"][:, 0]).min() == 100


def test_bad_fraction_is_refused():
    with pytest.raises(DataError, match="fraction"):
        validation_view(_dataset(), fraction=1.0)


def test_mfeat_view_has_the_default_runs_test_samples_left_out():
    from ssnas_tf.data.splits import make_splits
    from ssnas_tf.workflow.config import RunConfig
    ds, c = load_dataset("mfeat"), RunConfig()
    test = make_splits(ds, c.method, c.label_fraction, c.effective_split_seed,
                       c.test_fraction).test
    view = validation_view(ds, test=test)
    assert view.num_samples == 1500 and len(view.splits["test"]) == 300
