"""The label-fraction protocol (`make_splits`) and the evaluation metrics."""

import dataclasses
import json

import numpy as np
import pytest

from ssnas_tf.data import MultimodalDataset, load_dataset
from ssnas_tf.metrics import accuracy, weighted_f1
from ssnas_tf.data.splits import RunSplits, make_splits, search_split

FIELDS = ("test", "labeled", "unlabeled", "search_train", "search_valid", "search_select")
SEARCH_PARTS = ("search_train", "search_valid", "search_select")


@pytest.fixture(scope="module")
def mfeat():
    return load_dataset("mfeat")


def _single_label(test_split=False, counts=(40, 60, 100), name="toy"):
    """Single-label data, classes named c0, c1, ... with the given sizes."""
    labels = np.concatenate([np.full(n, c, np.int64) for c, n in enumerate(counts)])
    labels = labels[np.random.default_rng(7).permutation(len(labels))]
    n = len(labels)
    splits = {}
    if test_split:
        splits = {"test": np.arange(0, n, 5, dtype=np.int64),
                  "train": np.setdiff1d(np.arange(n), np.arange(0, n, 5)).astype(np.int64)}
    return MultimodalDataset(
        name=name, inputs={"v": np.zeros((n, 3), np.float32)}, kinds={"v": "vector"},
        labels=labels, label_names=[f"c{c}" for c in range(len(counts))], splits=splits)


def _multi_label(test_split=False):
    """Multi-label data, 4 labels named l0..l3; every sample has >= 1 label."""
    rng = np.random.default_rng(3)
    n = 240
    labels = (rng.random((n, 4)) < [0.5, 0.4, 0.3, 0.2]).astype(np.int64)
    labels[labels.sum(axis=1) == 0, 0] = 1
    splits = {"test": np.arange(n - 60, n, dtype=np.int64)} if test_split else {}
    return MultimodalDataset(
        name="multi", inputs={"v": np.zeros((n, 2), np.float32)}, kinds={"v": "vector"},
        labels=labels, label_names=["l0", "l1", "l2", "l3"], multilabel=True,
        splits=splits)


def _datasets():
    return {"single": _single_label(), "single+test": _single_label(test_split=True),
            "multi": _multi_label(), "multi+test": _multi_label(test_split=True)}


def _check_protocol(ds, s, method, r):
    assert isinstance(s, RunSplits)
    everything = np.arange(ds.num_samples)
    for name in FIELDS:
        index = getattr(s, name)
        assert index.dtype == np.int64, name
        assert len(np.unique(index)) == len(index), f"{name} repeats samples"
        assert np.all((index >= 0) & (index < ds.num_samples)), name
    pool = np.setdiff1d(everything, s.test)
    if "test" in ds.splits:
        np.testing.assert_array_equal(s.test, np.sort(ds.splits["test"]))
    # Nothing but the test split itself touches test samples.
    for name in FIELDS[1:]:
        assert not np.intersect1d(getattr(s, name), s.test).size, f"{name} meets test"
    if r < 1:
        np.testing.assert_array_equal(np.union1d(s.labeled, s.unlabeled), pool)
        assert not np.intersect1d(s.labeled, s.unlabeled).size
    else:
        np.testing.assert_array_equal(s.labeled, pool)
        np.testing.assert_array_equal(s.unlabeled, pool)
    searched = s.unlabeled if method == "ssl" else s.labeled
    # Three disjoint, non-empty parts: the genotype is selected on samples
    # that train neither the network nor the architecture weights.
    for i, a in enumerate(SEARCH_PARTS):
        assert len(getattr(s, a)), a
        for b in SEARCH_PARTS[i + 1:]:
            assert not np.intersect1d(getattr(s, a), getattr(s, b)).size, (a, b)
    np.testing.assert_array_equal(
        np.union1d(np.union1d(s.search_train, s.search_valid), s.search_select), searched)
    assert abs(len(s.search_select) - 0.2 * len(searched)) <= ds.num_classes + 1
    assert s.sizes() == {k: len(getattr(s, k)) for k in FIELDS}
    assert s.to_dict() == {k: getattr(s, k).tolist() for k in FIELDS}


@pytest.mark.parametrize("method", ["ssl", "supervised"])
@pytest.mark.parametrize("r", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["single", "single+test", "multi", "multi+test"])
def test_protocol_on_synthetic_data(kind, r, method):
    ds = _datasets()[kind]
    s = make_splits(ds, method, r, seed=0)
    _check_protocol(ds, s, method, r)
    if "test" not in ds.splits:
        assert abs(len(s.test) - 0.25 * ds.num_samples) <= ds.num_classes + 1


@pytest.mark.parametrize("method", ["ssl", "supervised"])
@pytest.mark.parametrize("r", [0.05, 0.1, 1.0])
def test_protocol_on_mfeat(mfeat, r, method):
    s = make_splits(mfeat, method, r, seed=0)
    _check_protocol(mfeat, s, method, r)
    # mfeat has no split of its own: a stratified 25% test split (50 per digit).
    assert len(s.test) == 500
    np.testing.assert_array_equal(np.bincount(mfeat.labels[s.test]), [50] * 10)
    if r < 1:
        # round(r * 150) per digit (0.05: 7.5 -> 8, so 80 of 1500 in all)
        assert len(s.labeled) == 10 * round(r * 150)
        np.testing.assert_array_equal(np.bincount(mfeat.labels[s.labeled]),
                                      [round(r * 150)] * 10)


def test_ssl_searches_unlabeled_supervised_searches_labeled(mfeat):
    ssl = make_splits(mfeat, "ssl", 0.1, seed=0)
    sup = make_splits(mfeat, "supervised", 0.1, seed=0)
    # Same seed and fraction: the same test, labeled and unlabeled samples.
    for name in ("test", "labeled", "unlabeled"):
        np.testing.assert_array_equal(getattr(ssl, name), getattr(sup, name))
    def searched(s):
        return np.concatenate([getattr(s, name) for name in SEARCH_PARTS])
    assert len(searched(ssl)) == 1350 and len(searched(sup)) == 150
    assert not np.intersect1d(searched(ssl), ssl.labeled).size
    assert not np.intersect1d(searched(sup), sup.unlabeled).size
    # 20% held out to select the genotype: 3 labeled samples per digit.
    np.testing.assert_array_equal(np.bincount(mfeat.labels[sup.search_select]), [3] * 10)
    assert len(ssl.search_select) == 270


@pytest.mark.parametrize("kind", ["single", "multi+test"])
def test_deterministic_in_the_seed(kind):
    ds = _datasets()[kind]
    a = make_splits(ds, "ssl", 0.3, seed=11)
    b = make_splits(ds, "ssl", 0.3, seed=11)
    c = make_splits(ds, "ssl", 0.3, seed=12)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert any(not np.array_equal(getattr(a, name), getattr(c, name))
               for name in ("labeled", "search_train"))
    assert not np.array_equal(a.labeled, c.labeled)


def test_deterministic_on_mfeat(mfeat):
    a = make_splits(mfeat, "ssl", 0.1, seed=0).to_dict()
    b = make_splits(load_dataset("mfeat"), "ssl", 0.1, seed=0).to_dict()
    c = make_splits(mfeat, "ssl", 0.1, seed=1).to_dict()
    assert a == b
    for name in FIELDS:
        assert a[name] != c[name], name


@pytest.mark.parametrize("r", [0.1, 0.25, 0.5, 0.9])
def test_stratified_single_label(r):
    ds = _single_label(counts=(40, 61, 100, 13))
    s = make_splits(ds, "ssl", r, seed=5)
    pool = np.setdiff1d(np.arange(ds.num_samples), s.test)
    pool_counts = np.bincount(ds.labels[pool], minlength=4)
    labeled_counts = np.bincount(ds.labels[s.labeled], minlength=4)
    assert np.all(np.abs(labeled_counts - r * pool_counts) <= 1), (labeled_counts, pool_counts)
    # The test split is stratified too (25% of each class, within rounding).
    test_counts = np.bincount(ds.labels[s.test], minlength=4)
    totals = np.bincount(ds.labels, minlength=4)
    assert np.all(np.abs(test_counts - 0.25 * totals) <= 1), (test_counts, totals)
    # supervised: each class is split evenly between the search halves.
    s = make_splits(ds, "supervised", r, seed=5)
    train = np.bincount(ds.labels[s.search_train], minlength=4)
    valid = np.bincount(ds.labels[s.search_valid], minlength=4)
    assert np.all(np.abs(train - valid) <= 1)


def _scrambled(ds, index, seed=1):
    """A copy of `ds` whose labels at `index` are replaced by random ones."""
    rng = np.random.default_rng(seed)
    labels = ds.labels.copy()
    if ds.multilabel:
        labels[index] = rng.integers(0, 2, size=(len(index), ds.num_classes))
    else:
        labels[index] = rng.integers(0, ds.num_classes, size=len(index))
    assert not np.array_equal(labels, ds.labels)
    return dataclasses.replace(ds, labels=labels)


@pytest.mark.parametrize("r", [0.1, 0.5, 1.0])
@pytest.mark.parametrize("kind", ["single", "single+test", "multi", "multi+test"])
def test_ssl_search_halves_read_no_unlabeled_label(kind, r):
    """The ssl search halves are the same whatever the labels of the unlabeled
    part (and of the test split)."""
    ds = _datasets()[kind]
    s = make_splits(ds, "ssl", r, seed=3)
    hidden = np.setdiff1d(np.arange(ds.num_samples), s.labeled)
    scrambled = _scrambled(ds, hidden)
    select, valid, train = search_split(scrambled, "ssl", s.labeled, s.unlabeled, seed=3)
    np.testing.assert_array_equal(select, s.search_select)
    np.testing.assert_array_equal(valid, s.search_valid)
    np.testing.assert_array_equal(train, s.search_train)
    assert abs(len(valid) - len(train)) <= 1


@pytest.mark.parametrize("method", ["ssl", "supervised"])
@pytest.mark.parametrize("kind", ["single+test", "multi+test"])
def test_own_test_labels_are_never_read(kind, method):
    """With the dataset's own test split, scrambled test labels give the same
    splits (they neither steer the labeled draw nor the class check)."""
    ds = _datasets()[kind]
    a = make_splits(ds, method, 0.2, seed=0)
    b = make_splits(_scrambled(ds, ds.splits["test"]), method, 0.2, seed=0)
    assert a.to_dict() == b.to_dict()


def test_a_class_seen_only_in_the_test_split_is_no_error():
    ds = _single_label(test_split=True)
    labels = ds.labels.copy()
    labels[ds.splits["test"][:3]] = 3  # a fourth class, never in the pool
    ds = dataclasses.replace(ds, labels=labels, label_names=("c0", "c1", "c2", "c3"))
    s = make_splits(ds, "ssl", 0.1, seed=0)
    assert 3 not in ds.labels[s.labeled]


def test_splits_read_back_from_json(mfeat):
    s = make_splits(mfeat, "ssl", 0.1, seed=0)
    data = json.loads(json.dumps(s.to_dict()))
    back = RunSplits.from_dict(data, mfeat.num_samples)
    assert back.to_dict() == s.to_dict()
    assert back.test.dtype == np.int64


@pytest.mark.parametrize("edit, needle", [
    (lambda d: d.pop("search_valid"), "search_valid: expected a list"),
    (lambda d: d["labeled"].append(2000), "labeled: expected a list of sample indices in [0, 2000)"),
    (lambda d: d["unlabeled"].__setitem__(0, 1.5), "unlabeled: expected a list"),
    (lambda d: d["labeled"].append(d["test"][0]), "labeled shares samples with test"),
])
def test_splits_json_errors_name_the_field(mfeat, edit, needle):
    data = make_splits(mfeat, "ssl", 0.1, seed=0).to_dict()
    edit(data)
    with pytest.raises(ValueError) as err:
        RunSplits.from_dict(data, mfeat.num_samples, source="run/splits.json")
    assert str(err.value).startswith("run/splits.json: ") and needle in str(err.value)


def test_stratified_multi_label_keeps_every_label():
    ds = _multi_label()
    s = make_splits(ds, "ssl", 0.2, seed=0)
    pool = np.setdiff1d(np.arange(ds.num_samples), s.test)
    pool_counts = ds.labels[pool].sum(axis=0)
    labeled_counts = ds.labels[s.labeled].sum(axis=0)
    assert np.all(labeled_counts > 0)
    assert abs(len(s.labeled) - 0.2 * len(pool)) <= ds.num_classes + 1
    # Stratified on the rarest label: the rare label's share is kept.
    assert abs(labeled_counts[3] - 0.2 * pool_counts[3]) <= 2


@pytest.mark.parametrize("r", [0, 0.0, -0.1, 1.5, 1.0001])
@pytest.mark.parametrize("kind", ["single", "multi"])
def test_label_fraction_outside_unit_interval(kind, r):
    with pytest.raises(ValueError, match="--label-fraction"):
        make_splits(_datasets()[kind], "ssl", r, seed=0)


def test_small_class_gets_at_least_one_label():
    # c3 has 8 samples: 6 in the pool, round(0.05 * 6) = 0, raised to 1
    # (issue 10: at least one labeled sample per class present in the pool).
    ds = _single_label(counts=(200, 200, 200, 8))
    s = make_splits(ds, "ssl", 0.05, seed=0)
    counts = np.bincount(ds.labels[s.labeled], minlength=4)
    assert counts[3] == 1 and all(counts[:3] == round(0.05 * 150))


def test_rare_label_gets_a_labeled_positive():
    rng = np.random.default_rng(0)
    labels = np.zeros((400, 3), np.int64)
    labels[:, 0] = 1
    labels[rng.permutation(400)[:150], 1] = 1
    labels[[5, 77, 300], 2] = 1  # a rare label
    ds = MultimodalDataset(
        name="rare", inputs={"v": np.zeros((400, 2), np.float32)}, kinds={"v": "vector"},
        labels=labels, label_names=["common", "middle", "rare_label"], multilabel=True)
    # The rare label's stratum still gets one labeled sample (issue 10).
    s = make_splits(ds, "ssl", 0.05, seed=0)
    assert labels[s.labeled, 2].sum() >= 1


def test_mfeat_tiny_fraction_labels_one_sample_per_digit(mfeat):
    # 150 pool samples per digit: 0.002 * 150 rounds to 0, raised to 1.
    s = make_splits(mfeat, "ssl", 0.002, seed=0)
    assert np.bincount(mfeat.labels[s.labeled], minlength=10).tolist() == [1] * 10


# -- metrics ------------------------------------------------------------------

def _one_hot_scores(pred, k):
    scores = np.full((len(pred), k), 0.1)
    scores[np.arange(len(pred)), pred] = 0.9
    return scores


def test_weighted_f1_multiclass_by_hand():
    y = np.array([0, 0, 1, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 0, 2])
    # class 0: tp 1 fp 1 fn 1 -> F1 1/2, support 2
    # class 1: tp 2 fp 1 fn 1 -> F1 2/3, support 3
    # class 2: tp 1            -> F1 1,   support 1
    expected = (0.5 * 2 + (2 / 3) * 3 + 1.0 * 1) / 6
    assert weighted_f1(y, _one_hot_scores(pred, 3)) == pytest.approx(expected)
    assert accuracy(y, _one_hot_scores(pred, 3)) == pytest.approx(4 / 6)


def test_weighted_f1_ignores_classes_without_support():
    y = np.array([0, 0, 1])
    pred = np.array([0, 2, 1])  # class 2 predicted once but never true
    expected = ((2 / 3) * 2 + 1.0 * 1) / 3
    assert weighted_f1(y, _one_hot_scores(pred, 3)) == pytest.approx(expected)
    assert accuracy(y, _one_hot_scores(pred, 3)) == pytest.approx(2 / 3)


def test_weighted_f1_takes_logits_for_multiclass():
    y = np.array([2, 0, 1])
    logits = np.array([[-1.0, 0.5, 3.0], [2.0, -4.0, 0.0], [0.0, 1.0, -1.0]])
    assert weighted_f1(y, logits) == 1.0
    assert accuracy(y, logits) == 1.0


def test_weighted_f1_multilabel_by_hand_with_threshold():
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]])
    scores = np.array([[0.9, 0.2, 0.35], [0.1, 0.25, 0.4], [0.31, 0.8, 0.1]])
    # threshold 0.3: pred [[1,0,1],[0,0,1],[1,1,0]]
    # label 0: F1 1 (support 2); label 1: tp 1 fn 1 -> 2/3 (2); label 2: tp 1 fp 1 -> 2/3 (1)
    assert weighted_f1(y, scores, multilabel=True, threshold=0.3) == pytest.approx(
        (1.0 * 2 + (2 / 3) * 2 + (2 / 3) * 1) / 5)
    # the default threshold is the reference's 0.3
    assert weighted_f1(y, scores, multilabel=True) == pytest.approx(0.8)
    # threshold 0.5: pred [[1,0,0],[0,0,0],[0,1,0]]
    # label 0: tp 1 fn 1 -> 2/3; label 1: tp 1 fn 1 -> 2/3; label 2: tp 0 fn 1 -> 0
    assert weighted_f1(y, scores, multilabel=True, threshold=0.5) == pytest.approx(
        ((2 / 3) * 2 + (2 / 3) * 2) / 5)


def test_perfect_predictions_score_one():
    y = np.array([3, 0, 1, 2, 1, 0])
    assert weighted_f1(y, np.eye(4)[y]) == 1.0
    assert accuracy(y, np.eye(4)[y]) == 1.0
    multi = np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1]])
    assert weighted_f1(multi, multi.astype(float), multilabel=True) == 1.0
    assert weighted_f1(multi, multi * 0.6 + 0.2, multilabel=True, threshold=0.5) == 1.0


def test_all_wrong_scores_zero():
    y = np.array([0, 1, 2])
    assert weighted_f1(y, _one_hot_scores(np.array([1, 2, 0]), 3)) == 0.0
    assert accuracy(y, _one_hot_scores(np.array([1, 2, 0]), 3)) == 0.0
