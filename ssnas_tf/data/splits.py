"""Deterministic, stratified splits for the label-fraction protocol.

Experiment 1 of Suzuki & Ono (2025): of the non-test samples (the pool), a
fraction r is labeled.

* `ssl` searches and pretrains on the unlabeled (1 - r) part and trains the
  classifier on the labeled r part. At r = 1 nothing is left unlabeled, so the
  search and pretraining use the whole pool with its labels ignored (the
  paper's Experiment 2).
* `supervised` (BM-NAS) uses only the labeled r part: split into train/valid
  halves for the search, then all of it to train the classifier.

The test split is the dataset's own when it has one, else a seeded stratified
`test_fraction` of all samples. The model is never selected on it.
"""

import dataclasses
from typing import Dict

import numpy as np



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


@dataclasses.dataclass(frozen=True)
class RunSplits:
    """Sample indices of one run; all disjoint from `test`."""

    test: np.ndarray
    labeled: np.ndarray
    unlabeled: np.ndarray
    search_train: np.ndarray
    search_valid: np.ndarray

    def to_dict(self) -> Dict[str, list]:
        return {k: v.tolist() for k, v in dataclasses.asdict(self).items()}

    def sizes(self) -> Dict[str, int]:
        return {k: len(v) for k, v in dataclasses.asdict(self).items()}


def check_label_fraction(label_fraction):
    if not 0 < label_fraction <= 1:
        raise ValueError(
            f"--label-fraction must be in (0, 1], got {label_fraction}")


def make_splits(dataset, method, label_fraction, seed, test_fraction=0.25):
    """The run's splits, reproducible from `seed`.

    Raises:
        ValueError: label_fraction outside (0, 1], or a fraction that leaves a
            class without a labeled sample (the message names the class).
    """
    check_label_fraction(label_fraction)
    rng = np.random.default_rng(seed)
    strata = _strata(dataset.labels, dataset.multilabel)
    everything = np.arange(dataset.num_samples, dtype=np.int64)
    if "test" in dataset.splits:
        test = np.sort(dataset.splits["test"]).astype(np.int64)
        pool = np.setdiff1d(everything, test)
    else:
        test, pool = stratified_take(everything, strata, test_fraction, rng)
    if label_fraction >= 1:
        labeled, unlabeled = pool, pool
    else:
        # No minimum per class here: a fraction too small to label every
        # class is an error below, not silently raised.
        labeled, unlabeled = stratified_take(pool, strata, label_fraction, rng,
                                             keep_both_sides=False)
    _check_every_class_labeled(dataset, labeled, label_fraction)
    searched = unlabeled if method == "ssl" else labeled
    search_valid, search_train = stratified_take(searched, strata, 0.5, rng)
    if len(search_train) == 0 or len(search_valid) == 0:
        raise ValueError(
            f"{len(searched)} samples are too few to split into search "
            f"train/valid halves; raise --label-fraction")
    return RunSplits(test, labeled, unlabeled, search_train, search_valid)


def _check_every_class_labeled(dataset, labeled, label_fraction):
    labels = dataset.labels[labeled]
    if dataset.multilabel:
        present = labels.sum(axis=0) > 0
        wanted = dataset.labels.sum(axis=0) > 0
    else:
        present = np.bincount(labels, minlength=dataset.num_classes) > 0
        wanted = np.bincount(dataset.labels, minlength=dataset.num_classes) > 0
    missing = [dataset.label_names[i] for i in np.flatnonzero(wanted & ~present)]
    if missing:
        raise ValueError(
            f"--label-fraction {label_fraction} leaves {len(missing)} class(es) "
            f"without a labeled sample ({', '.join(map(str, missing[:10]))}); "
            f"raise the fraction")
