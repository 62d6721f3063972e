"""Few-label draws: at least one label per class, --labels-per-class, the
multi-label warning, and the supervised search batch at tiny label fractions."""

import warnings

import numpy as np
import pytest

from ssnas_tf.data import load_dataset
from ssnas_tf.data.base import MultimodalDataset
from ssnas_tf.data.splits import make_splits
from ssnas_tf.workflow.run import search_batch_size


def _per_class(data, index):
    return np.bincount(data.labels[index], minlength=data.num_classes)


def test_tiny_fraction_labels_one_sample_of_every_class():
    data = load_dataset("mfeat")  # 150 pool samples per digit
    s = make_splits(data, "supervised", 0.002, seed=1)  # 0.002 * 150 rounds to 0
    np.testing.assert_array_equal(_per_class(data, s.labeled), np.ones(10))
    # Where the fraction already labels every class, the draw is the usual one.
    s = make_splits(data, "ssl", 0.1, seed=1)
    np.testing.assert_array_equal(_per_class(data, s.labeled), np.full(10, 15))


def test_labels_per_class_takes_k_of_each_class():
    data = load_dataset("mfeat")
    s = make_splits(data, "ssl", 0.1, seed=2, labels_per_class=3)
    np.testing.assert_array_equal(_per_class(data, s.labeled), np.full(10, 3))
    assert len(s.unlabeled) == 1500 - 30
    again = make_splits(data, "supervised", 0.1, seed=2, labels_per_class=3)
    np.testing.assert_array_equal(again.labeled, s.labeled)  # paired across methods


def _hidden_class_data():
    """Multi-label: classes g0..g11 on 10 samples each; class "hidden" on one
    sample of every group, so it is more frequent (12) than each group and no
    sample is stratified by it: a tiny fraction can leave it unlabeled."""
    groups, per = 12, 10
    labels = np.zeros((groups * per, groups + 1), np.int64)
    for g in range(groups):
        labels[g * per:(g + 1) * per, g] = 1
        labels[g * per, groups] = 1
    labels = np.concatenate([labels, labels[::per]])  # + a 12-sample test split
    n = len(labels)
    return MultimodalDataset(
        name="toy", inputs={"v": np.zeros((n, 2), np.float32)}, kinds={"v": "vector"},
        labels=labels, label_names=tuple(f"g{g}" for g in range(groups)) + ("hidden",),
        multilabel=True, splits={"test": np.arange(groups * per, n)})


def test_multilabel_class_without_labeled_positive_is_a_warning_naming_it():
    data = _hidden_class_data()
    for seed in range(100):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            s = make_splits(data, "ssl", 0.01, seed=seed)
        if data.labels[s.labeled, -1].sum() == 0:
            break
    else:
        pytest.fail("no seed left the hidden class unlabeled")
    assert len(s.labeled) == 12  # one per group stratum
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert any("(hidden)" in m and "no labeled positive" in m for m in messages), messages


@pytest.mark.parametrize("n, batch, expected_batch, min_steps", [
    (7, 128, 4, 2),      # mfeat r = 0.01: 15 labels, halves of 7 and 8
    (15, 128, 4, 4),
    (75, 128, 18, 4),    # r = 0.1
    (750, 128, 128, 6),  # r = 1: unchanged
    (3, 128, 3, 1),      # fewer samples than the minimum batch
])
def test_supervised_search_batch_keeps_several_steps(n, batch, expected_batch, min_steps):
    got = search_batch_size(n, batch)
    assert got == expected_batch
    assert -(-n // got) >= min_steps
