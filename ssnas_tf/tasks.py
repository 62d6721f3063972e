"""The prediction task: multi-class or multi-label, and all that depends on it.

One object decides, for both kinds of labels, the training loss, the output
activation, the decision rule and the evaluation metrics, so the search, the
fine-tuning, the evaluation and the TF Serving export cannot disagree:

| | multi-class | multi-label |
|---|---|---|
| labels | (N,) class ids | (N, K) multi-hot |
| loss | softmax cross-entropy | per-class binary cross-entropy (mean) |
| probabilities | softmax(logits) | sigmoid(logits) |
| decision | argmax | probability > threshold (BM-NAS: 0.3) |
| metrics | weighted F1, accuracy | weighted F1 (and the threshold) |

Example:
>>> task = Task.for_dataset(dataset, threshold=0.3)
>>> model.compile(optimizer, loss=task.keras_loss())
>>> task.metrics(labels, task.probabilities(model.predict(x)))
{'weighted_f1': 0.91, 'accuracy': 0.92}
"""

import numpy as np

from ssnas_tf.metrics import DEFAULT_MULTILABEL_THRESHOLD, accuracy, weighted_f1
from ssnas_tf.errors import ConfigError


class Task:
    """Multi-class or multi-label classification over `num_classes` outputs.

    Args:
        num_classes: K, the number of logits.
        multilabel: independent labels (sigmoid) instead of one class per
            sample (softmax). Defaults to False.
        threshold: multi-label decision threshold on the probability.
            Defaults to 0.3 (the BM-NAS reference on MM-IMDB).
    """

    def __init__(self, num_classes, multilabel=False,
                 threshold=DEFAULT_MULTILABEL_THRESHOLD):
        if not 0 < threshold < 1:
            raise ConfigError(f"threshold must be in (0, 1), got {threshold}")
        self.num_classes = int(num_classes)
        self.multilabel = bool(multilabel)
        self.threshold = float(threshold)

    @classmethod
    def for_dataset(cls, dataset, threshold=DEFAULT_MULTILABEL_THRESHOLD):
        """The task of a `MultimodalDataset`."""
        return cls(dataset.num_classes, dataset.multilabel, threshold)

    def __repr__(self):
        kind = f"multilabel, threshold={self.threshold}" if self.multilabel else "multiclass"
        return f"Task({self.num_classes} classes, {kind})"

    @property
    def activation(self):
        """The output activation's name: "sigmoid" or "softmax"."""
        return "sigmoid" if self.multilabel else "softmax"

    # -- training -----------------------------------------------------------

    def keras_loss(self):
        """A Keras loss on logits, for `Model.compile`."""
        import keras
        if self.multilabel:
            return keras.losses.BinaryCrossentropy(from_logits=True)
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(self, y_true, logits):
        """The mean loss of a batch of logits (backend ops, differentiable)."""
        import keras
        from keras import ops
        if self.multilabel:
            return ops.mean(keras.losses.binary_crossentropy(
                ops.cast(y_true, logits.dtype), logits, from_logits=True))
        return ops.mean(keras.losses.sparse_categorical_crossentropy(
            y_true, logits, from_logits=True))

    # -- prediction (numpy) -------------------------------------------------

    def probabilities(self, logits):
        """Probabilities from logits, in float64."""
        logits = np.asarray(logits, dtype=np.float64)
        if self.multilabel:
            return 1 / (1 + np.exp(-logits))
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def decide(self, probabilities):
        """(N,) class ids, or (N, K) multi-hot int64 where probability > threshold."""
        probabilities = np.asarray(probabilities)
        if self.multilabel:
            return (probabilities > self.threshold).astype(np.int64)
        return probabilities.argmax(axis=1)

    def metrics(self, y_true, probabilities, digits=4):
        """Weighted F1, plus accuracy (multi-class) or the threshold (multi-label)."""
        out = {"weighted_f1": round(weighted_f1(y_true, probabilities, self.multilabel,
                                                self.threshold), digits)}
        if self.multilabel:
            out["threshold"] = self.threshold
        else:
            out["accuracy"] = round(accuracy(y_true, probabilities), digits)
        return out

    def weighted_f1(self, y_true, probabilities):
        """Support-weighted F1 of the decisions (`ssnas_tf.metrics.weighted_f1`)."""
        return weighted_f1(y_true, probabilities, self.multilabel, self.threshold)

    # -- serving (TensorFlow) -------------------------------------------------

    def tf_outputs(self, logits):
        """{"probabilities", "predictions"} as TensorFlow tensors, for serving."""
        import tensorflow as tf
        if self.multilabel:
            probabilities = tf.sigmoid(logits)
            return {"probabilities": probabilities,
                    "predictions": tf.cast(probabilities > self.threshold, tf.int64)}
        probabilities = tf.nn.softmax(logits, axis=-1)
        return {"probabilities": probabilities,
                "predictions": tf.argmax(probabilities, axis=-1)}

    def prediction_meaning(self):
        """What the served `predictions` output holds, in words."""
        if self.multilabel:
            return f"multi-hot, 1 where probabilities > threshold ({self.threshold})"
        return "index of the most probable class"
