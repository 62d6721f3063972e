"""Tests for ssnas_tf.nas.callbacks.GenotypeTracker: per-epoch derivation, the
validation-criterion selection over several epochs, and the search log."""

import json
import types

import numpy as np
import pytest

from ssnas_tf.nas.callbacks import GenotypeTracker
from ssnas_tf.nas.derive import derive_genotype
from ssnas_tf.nas.model_search import SearchNetwork

NAMES = ("a", "b", "c")
HIGH, LOW = 6.0, -6.0


def _network():
    net = SearchNetwork(NAMES, num_cells=1, num_steps=1, multiplier=1, channels=4,
                        length=4, primitives=("zero", "sum", "concat_fc"))
    net.build({n: (None, 3) for n in NAMES})
    return net


def _read(net, pair):
    """alpha making the single cell read the input pair `pair`."""
    net.alpha.assign(np.array([[0.0, HIGH if i in pair else LOW] for i in range(3)],
                              "float32"))


# One epoch each: (input pair the arch selects, validation criterion).
EPOCHS = [((0, 1), 0.9), ((1, 2), 0.5), ((0, 2), 0.7), ((0, 2), 0.6)]


def _track(mode, tmp_path):
    net = _network()
    tracker = GenotypeTracker(lambda model, logs: logs["val_loss"], mode=mode,
                              log_path=str(tmp_path / "log.jsonl"), verbose=False)
    tracker.set_model(types.SimpleNamespace(network=net))
    genotypes = []
    for epoch, (pair, score) in enumerate(EPOCHS):
        _read(net, pair)
        genotypes.append(derive_genotype(net))
        tracker.on_epoch_end(epoch, {"val_loss": score})
    return tracker, genotypes


@pytest.mark.parametrize("mode, best_epoch", [("min", 2), ("max", 1)])
def test_keeps_the_genotype_of_the_best_epoch(mode, best_epoch, tmp_path):
    tracker, genotypes = _track(mode, tmp_path)
    assert tracker.best_epoch == best_epoch  # 1-based
    assert tracker.best_score == EPOCHS[best_epoch - 1][1]
    assert tracker.best_genotype == genotypes[best_epoch - 1]
    assert tracker.best_genotype.cell_inputs(0) == EPOCHS[best_epoch - 1][0]
    # The last epoch's genotype differs from the kept one in both modes.
    assert genotypes[-1] != tracker.best_genotype


def test_ties_keep_the_earlier_epoch(tmp_path):
    net = _network()
    tracker = GenotypeTracker(lambda m, logs: logs["score"], mode="max", verbose=False)
    tracker.set_model(types.SimpleNamespace(network=net))
    for epoch, pair in enumerate([(0, 1), (1, 2)]):
        _read(net, pair)
        tracker.on_epoch_end(epoch, {"score": 0.8})
    assert tracker.best_epoch == 1 and tracker.best_genotype.cell_inputs(0) == (0, 1)


def test_log_has_one_record_per_epoch(tmp_path):
    tracker, genotypes = _track("min", tmp_path)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert [r["score"] for r in records] == [s for _, s in EPOCHS]
    for record, genotype, (pair, _) in zip(records, genotypes, EPOCHS):
        assert record["genotype"] == genotype.to_dict()
        alpha = np.array(record["arch_weights"]["alpha"])
        np.testing.assert_allclose(alpha.sum(axis=-1), 1.0, atol=1e-4)  # softmaxed
        assert sorted(np.argsort(-alpha[:, 1])[:2].tolist()) == list(pair)
        assert set(record["arch_weights"]) == {"alpha", "beta", "gamma"}
    assert tracker.history == records


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="mode"):
        GenotypeTracker(lambda m, logs: 0.0, mode="best")
