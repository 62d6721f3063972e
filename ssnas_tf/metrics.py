"""Evaluation metrics: weighted F1 (multi-class and multi-label) and accuracy.

Weighted F1 is the mean of the per-class F1 scores weighted by each class's
support (true count), as sklearn's `f1_score(average="weighted")`; classes with
no support get weight 0. Multi-label predictions are sigmoid(logit) > threshold
(the BM-NAS reference uses 0.3 on MM-IMDB).
"""

import numpy as np

DEFAULT_MULTILABEL_THRESHOLD = 0.3


def _weighted_f1_from_indicators(y_true, y_pred):
    tp = (y_true & y_pred).sum(axis=0)
    fp = (~y_true & y_pred).sum(axis=0)
    fn = (y_true & ~y_pred).sum(axis=0)
    denom = 2 * tp + fp + fn
    f1 = np.where(denom > 0, 2 * tp / np.maximum(denom, 1), 0.0)
    support = y_true.sum(axis=0)
    if support.sum() == 0:
        return 0.0
    return float((f1 * support).sum() / support.sum())


def weighted_f1(y_true, scores, multilabel=False,
                threshold=DEFAULT_MULTILABEL_THRESHOLD):
    """Support-weighted F1.

    Args:
        y_true: (N,) class ids, or (N, K) multi-hot for multi-label data.
        scores: (N, K) probabilities or logits; argmax for multi-class,
            probability > `threshold` for multi-label (pass probabilities).
        multilabel: Defaults to False.
        threshold: multi-label decision threshold. Defaults to 0.3.

    Returns:
        A float in [0, 1].
    """
    scores = np.asarray(scores)
    num_classes = scores.shape[1]
    if multilabel:
        truth = np.asarray(y_true).astype(bool)
        pred = scores > threshold
    else:
        eye = np.eye(num_classes, dtype=bool)
        truth = eye[np.asarray(y_true).astype(int)]
        pred = eye[scores.argmax(axis=1)]
    return _weighted_f1_from_indicators(truth, pred)


def accuracy(y_true, scores):
    """Multi-class accuracy of argmax(scores)."""
    return float((np.asarray(scores).argmax(axis=1) == np.asarray(y_true)).mean())
