"""A validation view of a dataset: its non-test samples, with a held-out part
standing in for the test split.

Defaults are chosen on validation data, never on the test split. Running the
whole pipeline on `validation_view(ds)` trains on the non-test samples only and
scores ("evaluate") on a seeded, stratified part of them, so the dataset's own
test split is never read: `benchmarks/suite.py` ranks settings this way.
"""

import numpy as np

from ssnas_tf.data.base import DataError, MultimodalDataset
from ssnas_tf.data.splits import _strata, stratified_take


def validation_view(dataset: MultimodalDataset, fraction: float = 0.2,
                    seed: int = 0, test=None) -> MultimodalDataset:
    """The non-test samples of `dataset`, with a validation part as its test split.

    Args:
        dataset: a `MultimodalDataset`; its test samples are left out
            entirely.
        fraction: the stratified share of the non-test samples held out as
            the validation part. Defaults to 0.2.
        seed: seeds the draw. Defaults to 0.
        test: the test sample indices to leave out. Defaults to None: the
            dataset's own "test" split. A dataset without one needs it
            given, e.g. `make_splits(...).test` of the run whose test score
            matters (`benchmarks/suite.py` passes the default run's).

    Returns:
        A `MultimodalDataset` named `"<name>-validation"` whose only split is
        "test" (the validation part); its rows are read into memory.

    Example:
    >>> view = validation_view(load_dataset("mfeat"))
    >>> len(view.splits["test"]), view.num_samples
    (300, 1500)
    """
    if not 0 < fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {fraction}")
    everything = np.arange(dataset.num_samples, dtype=np.int64)
    if test is None:
        test = dataset.splits.get("test")
    if test is None:
        raise DataError(f"{dataset.name} has no test split of its own: pass the "
                        f"test samples to leave out (test=...)")
    pool = np.setdiff1d(everything, test)
    strata = _strata(dataset.labels[pool], dataset.multilabel)
    rng = np.random.default_rng(seed)
    held_out, _ = stratified_take(np.arange(len(pool)), strata, fraction, rng)
    view = dataset.subset(pool, name=dataset.name)
    view.splits = {"test": np.sort(held_out).astype(np.int64)}
    return view

