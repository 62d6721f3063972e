"""Deterministic splits for the label-fraction protocol.

Experiment 1 of Suzuki & Ono (2025): of the non-test samples (the pool), a
fraction r is labeled.

* `ssl` searches and pretrains on the unlabeled (1 - r) part and trains the
  classifier on the labeled r part. At r = 1 nothing is left unlabeled, so the
  search and pretraining use the whole pool with its labels ignored (the
  paper's Experiment 2).
* `supervised` (BM-NAS) uses only the labeled r part: split into train/valid
  halves for the search, then all of it to train the classifier.

Model selection never reads the batches that train the architecture: before
the halves are drawn, `SELECT_FRACTION` of the searched samples is held out as
`search_select`. The search trains the network weights on `search_train`, the
architecture weights (alpha, beta, gamma) on `search_valid`, and scores each
epoch's genotype on `search_select` alone (ssl: the contrastive loss of fixed
views of it; supervised: weighted F1 on it). The BM-NAS reference selects on
the test split instead; DARTS scores on the batches that train alpha.

The test split is the dataset's own when it has one, else a seeded stratified
`test_fraction` of all samples. The model is never selected on it.

Which labels are read: drawing the labeled part reads the pool's labels once,
to take the same fraction of every class (it simulates an annotator who labels
a class-balanced r of the pool), and the check that every class of the pool got
a labeled sample reads them too. Nothing else does: the ssl search halves are a
seeded random (label-free) split of the unlabeled part, and test labels are
read only to draw a stratified test split when the dataset has none (never
when it has one). The supervised search halves are stratified, since that
method reads the labeled part's labels anyway.
"""

import dataclasses
import warnings
from typing import Dict

import numpy as np

from ssnas_tf.errors import ConfigError, DataError

# Seeds the search halves apart from the labeled draw: which samples are
# labeled (and how many per class) cannot move them.
_SEARCH_STREAM = 1
# Seeds the external backbone-pretraining part apart from the other draws.
_EXTERNAL_STREAM = 2
# The share of the searched samples held out to select the genotype, for the
# methods that train architecture weights (the rest is halved train/valid).
SELECT_FRACTION = 0.2
ARCHITECTURE_METHODS = ("ssl", "supervised")


def _strata(labels, multilabel):
    """A class id per sample to stratify on (rarest positive label if multi-label)."""
    if not multilabel:
        return np.asarray(labels)
    counts = labels.sum(axis=0)
    rarity = np.where(labels > 0, counts[None, :], np.inf)
    strata = rarity.argmin(axis=1)
    strata[labels.sum(axis=1) == 0] = labels.shape[1]  # samples with no label
    return strata


def stratified_take(index, strata, fraction, rng, keep_both_sides=True):
    """Splits `index` into (taken, rest), taking round(fraction * n) of each
    stratum of n samples; with `keep_both_sides`, a stratum of two or more
    samples puts at least one on each side."""
    taken = []
    for value in np.unique(strata[index]):
        members = index[strata[index] == value]
        members = members[rng.permutation(len(members))]
        count = int(round(fraction * len(members)))
        if keep_both_sides and len(members) >= 2:
            count = min(max(count, 1), len(members) - 1) if fraction < 1 else len(members)
        taken.append(members[:count])
    taken = np.sort(np.concatenate(taken)) if taken else np.array([], np.int64)
    rest = np.setdiff1d(index, taken)
    return taken.astype(np.int64), rest.astype(np.int64)


_OPTIONAL = ("external", "search_select")


@dataclasses.dataclass(frozen=True)
class RunSplits:
    """Sample indices of one run; all disjoint from `test`.

    `external` (empty unless --backbone-pretraining external) is disjoint from
    every other split: only the backbone pretraining sees it. `search_select`
    (empty for methods without architecture weights, and in splits.json files
    written before it existed) selects the genotype and trains nothing.
    """

    test: np.ndarray
    labeled: np.ndarray
    unlabeled: np.ndarray
    search_train: np.ndarray
    search_valid: np.ndarray
    external: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(0, np.int64))
    search_select: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(0, np.int64))

    def _fields(self):
        # The optional splits only when there are some: other runs' files stay
        # as before.
        return {k: v for k, v in dataclasses.asdict(self).items()
                if k not in _OPTIONAL or len(v)}

    def to_dict(self) -> Dict[str, list]:
        return {k: v.tolist() for k, v in self._fields().items()}

    def sizes(self) -> Dict[str, int]:
        return {k: len(v) for k, v in self._fields().items()}

    @classmethod
    def from_dict(cls, data, num_samples, source="splits.json"):
        """Reads `to_dict()`'s output back, checking every index.

        Raises:
            DataError: a missing field, an index that is not an integer in
                [0, num_samples), or a split that shares samples with `test`;
                the message names `source` and the field.
        """
        if not isinstance(data, dict):
            raise DataError(f"{source}: expected a JSON object")
        splits = {}
        for field in dataclasses.fields(cls):
            values = data.get(field.name, [] if field.name in _OPTIONAL else None)
            if not isinstance(values, list) or not all(
                    type(v) is int and 0 <= v < num_samples for v in values):
                raise DataError(
                    f"{source}: {field.name}: expected a list of sample indices in "
                    f"[0, {num_samples})")
            splits[field.name] = np.asarray(values, dtype=np.int64)
        for name, index in splits.items():
            for other in ("test", "external"):
                if name != other and np.intersect1d(index, splits[other]).size:
                    raise DataError(f"{source}: {name} shares samples with {other}")
        return cls(**splits)


def check_label_fraction(label_fraction):
    if not 0 < label_fraction <= 1:
        raise ConfigError(
            f"--label-fraction must be in (0, 1], got {label_fraction}")


def make_splits(dataset, method, label_fraction, seed, test_fraction=0.25,
                external_fraction=0.0, labels_per_class=None):
    """The run's splits, reproducible from `seed`.

    With `external_fraction` > 0, a seeded random (label-free) share of the
    non-test samples is set aside first as `external`, for the backbone
    pretraining alone; the label fraction applies to what is left.

    The labeled part takes round(r * n) samples of each class (stratum) of n
    pool samples, and at least one; with `labels_per_class` K, min(K, n).

    Raises:
        ValueError: label_fraction outside (0, 1], or a fraction that leaves a
            class without a labeled sample (the message names the class).
    """
    check_label_fraction(label_fraction)
    rng = np.random.default_rng(seed)
    everything = np.arange(dataset.num_samples, dtype=np.int64)
    if "test" in dataset.splits:
        test = np.sort(dataset.splits["test"]).astype(np.int64)
        pool = np.setdiff1d(everything, test)
    else:
        test, pool = stratified_take(everything, _strata(dataset.labels, dataset.multilabel),
                                     test_fraction, rng)
    external, pool = _take_external(pool, external_fraction, seed)
    if label_fraction >= 1 and labels_per_class is None:
        labeled, unlabeled = pool, pool
    else:
        # Strata from the pool's labels only (test labels never steer it). No
        # minimum per class: a fraction too small to label every class is an
        # error below, not silently raised.
        strata = np.zeros(dataset.num_samples, np.int64)
        strata[pool] = _strata(dataset.labels[pool], dataset.multilabel)
        labeled, unlabeled = _draw_labeled(pool, strata, label_fraction,
                                           labels_per_class, rng)
    flag = (f"--labels-per-class {labels_per_class}" if labels_per_class
            else f"--label-fraction {label_fraction}")
    _check_every_class_labeled(dataset, pool, labeled, flag)
    select, search_valid, search_train = search_split(dataset, method, labeled,
                                                      unlabeled, seed)
    return RunSplits(test, labeled, unlabeled, search_train, search_valid, external,
                     select)


def _take_external(pool, fraction, seed):
    """(external, rest): a seeded random `fraction` of `pool`, labels unread."""
    if not fraction:
        return np.zeros(0, np.int64), pool
    if not 0 < fraction < 1:
        raise ConfigError(f"--external-fraction must be in (0, 1), got {fraction}")
    order = pool[np.random.default_rng([seed, _EXTERNAL_STREAM]).permutation(len(pool))]
    count = int(round(fraction * len(pool)))
    if not 0 < count < len(pool):
        raise ConfigError(f"--external-fraction {fraction} of {len(pool)} non-test "
                         f"samples leaves one side empty")
    return np.sort(order[:count]).astype(np.int64), np.sort(order[count:]).astype(np.int64)


def _draw_labeled(pool, strata, fraction, per_class, rng):
    """(labeled, unlabeled): per stratum of n, round(fraction * n) samples, or
    `per_class`; at least one and at most n. The random draws are those of
    `stratified_take`, so a fraction that gives every class a label draws the
    same samples as before the minimum existed."""
    taken = []
    for value in np.unique(strata[pool]):
        members = pool[strata[pool] == value]
        members = members[rng.permutation(len(members))]
        count = per_class if per_class else int(round(fraction * len(members)))
        taken.append(members[:min(max(count, 1), len(members))])
    labeled = np.sort(np.concatenate(taken)).astype(np.int64)
    return labeled, np.setdiff1d(pool, labeled).astype(np.int64)


def search_split(dataset, method, labeled, unlabeled, seed):
    """(search_select, search_valid, search_train): the parts the search uses.

    ssl searches `unlabeled`, split at random whatever its labels (the ssl
    path reads no label outside the labeled part); the other methods search
    `labeled`, split by class. For `ARCHITECTURE_METHODS`, `SELECT_FRACTION`
    (at least one sample) is held out first to select the genotype; the rest
    is halved into train (network weights) and valid (architecture weights).
    Other methods get an empty select part and score on valid.

    Raises:
        ValueError: too few samples for non-empty parts.
    """
    rng = np.random.default_rng([seed, _SEARCH_STREAM])
    searched = unlabeled if method == "ssl" else labeled
    select = np.zeros(0, np.int64)
    if method in ARCHITECTURE_METHODS:
        select, searched = _take(dataset, method, searched, SELECT_FRACTION, rng)
    search_valid, search_train = _take(dataset, method, searched, 0.5, rng)
    if len(search_train) == 0 or len(search_valid) == 0 or (
            method in ARCHITECTURE_METHODS and len(select) == 0):
        parts = "select/train/valid parts" if method in ARCHITECTURE_METHODS else (
            "train/valid halves")
        raise ConfigError(
            f"{len(searched) + len(select)} samples are too few to split into "
            f"search {parts}; raise --label-fraction")
    return select, search_valid, search_train


def _take(dataset, method, index, fraction, rng):
    """(taken, rest): `fraction` of `index`, at least one and not all of it.

    ssl draws at random (labels unread); the others stratify by class, or draw
    at random when no class can be split (one label per class at tiny r).
    """
    if method != "ssl":
        strata = np.zeros(dataset.num_samples, np.int64)
        strata[index] = _strata(dataset.labels[index], dataset.multilabel)
        taken, rest = stratified_take(index, strata, fraction, rng)
        if len(taken) and len(rest):
            return taken, rest
    if len(index) < 2:
        return np.zeros(0, np.int64), index.astype(np.int64)
    order = index[rng.permutation(len(index))]
    count = min(max(int(round(fraction * len(index))), 1), len(index) - 1)
    return (np.sort(order[:count]).astype(np.int64),
            np.sort(order[count:]).astype(np.int64))


def _check_every_class_labeled(dataset, pool, labeled, flag):
    """Every class that occurs in the pool must have a labeled sample (test
    labels are not read: a class seen only in the test split is no error).

    The draw gives every single-label class one; a multi-label class can still
    miss out (strata follow each sample's rarest label), which is a warning
    naming the classes: their F1 will be 0, but the run is valid.
    """
    labels, pool_labels = dataset.labels[labeled], dataset.labels[pool]
    if dataset.multilabel:
        present = labels.sum(axis=0) > 0
        wanted = pool_labels.sum(axis=0) > 0
    else:
        present = np.bincount(labels, minlength=dataset.num_classes) > 0
        wanted = np.bincount(pool_labels, minlength=dataset.num_classes) > 0
    missing = [dataset.label_names[i] for i in np.flatnonzero(wanted & ~present)]
    if not missing:
        return
    message = (f"{flag} leaves {len(missing)} class(es) without a labeled "
               f"sample ({', '.join(map(str, missing[:10]))})")
    if dataset.multilabel:
        warnings.warn(message + ": no labeled positive; the classifier never sees "
                      "them", RuntimeWarning, stacklevel=3)
        return
    raise ConfigError(message + "; raise the fraction")
