"""The task object (ssnas_tf/tasks.py): loss, probabilities, decision rule and
metrics for multi-class and multi-label data, in numpy and in TensorFlow."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.data import MultimodalDataset
from ssnas_tf.tasks import Task

LOGITS = np.array([[2.0, -1.0, 0.5], [-0.3, 0.1, -2.0], [0.0, -0.8473, 1.2]], np.float32)


def _dataset(multilabel):
    labels = (np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0]]) if multilabel
              else np.array([0, 1, 2]))
    return MultimodalDataset(name="t", inputs={"v": np.zeros((3, 2), np.float32)},
                             kinds={"v": "vector"}, labels=labels,
                             label_names=["a", "b", "c"], multilabel=multilabel)


def test_for_dataset():
    assert Task.for_dataset(_dataset(False)).multilabel is False
    task = Task.for_dataset(_dataset(True), threshold=0.4)
    assert task.multilabel and task.num_classes == 3 and task.threshold == 0.4
    assert task.activation == "sigmoid" and Task(3).activation == "softmax"
    with pytest.raises(ValueError, match="threshold"):
        Task(3, True, threshold=1.0)


def test_multiclass_probabilities_decision_and_metrics():
    task = Task(3)
    p = task.probabilities(LOGITS)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p, tf.nn.softmax(LOGITS.astype(np.float64)).numpy())
    np.testing.assert_array_equal(task.decide(p), [0, 1, 2])
    # class 0: F1 2/3 on support 2; class 1: F1 1 on support 1 -> 7/9
    assert task.metrics([0, 1, 0], p) == {"weighted_f1": round(7 / 9, 4),
                                          "accuracy": round(2 / 3, 4)}
    assert task.metrics([0, 1, 2], p) == {"weighted_f1": 1.0, "accuracy": 1.0}


def test_multilabel_threshold_is_strict():
    task = Task(3, multilabel=True, threshold=0.3)
    p = task.probabilities(LOGITS)
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-LOGITS.astype(np.float64))))
    # sigmoid(-0.8473) = 0.3000: on the threshold is not above it.
    at = np.array([[0.3, 0.31, 0.29]])
    np.testing.assert_array_equal(task.decide(at), [[0, 1, 0]])
    truth = task.decide(p)
    assert task.metrics(truth, p) == {"weighted_f1": 1.0, "threshold": 0.3}
    assert task.weighted_f1(1 - truth, p) < 1.0


@pytest.mark.parametrize("multilabel", [False, True])
def test_loss_matches_keras_loss(multilabel):
    task = Task(3, multilabel)
    y = _dataset(multilabel).labels
    expected = task.keras_loss()(y.astype(np.float32) if multilabel else y, LOGITS)
    np.testing.assert_allclose(float(task.loss(y, keras.ops.convert_to_tensor(LOGITS))),
                               float(expected), rtol=1e-6)
    wrong = Task(3, not multilabel)
    assert type(wrong.keras_loss()) is not type(task.keras_loss())


@pytest.mark.parametrize("multilabel", [False, True])
def test_serving_outputs_match_numpy(multilabel):
    task = Task(3, multilabel, threshold=0.3)
    out = task.tf_outputs(tf.constant(LOGITS))
    p = task.probabilities(LOGITS)
    np.testing.assert_allclose(out["probabilities"].numpy(), p, atol=1e-6)
    np.testing.assert_array_equal(out["predictions"].numpy(), task.decide(p))
    assert out["predictions"].dtype == tf.int64
