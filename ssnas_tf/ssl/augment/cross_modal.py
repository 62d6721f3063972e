"""Cross-modal view pairs: one view keeps some modalities, the other the rest.

A plain SimCLR pair shows every modality in both views, so the contrastive loss
can be minimised through whichever modality's augmented views are easiest to
match, and a search driven by it may drop a modality that carries the signal.
When a sample's pair is split across modalities, view 1 keeps a random
non-empty subset A of the modalities and view 2 keeps the complement (the
others are blanked: zeros, padding ids, empty strings). The two views then
agree only through what the modalities share, which a fused representation
can only match by reading both sides: a network that ignores a modality maps
that sample's A-only (or complement-only) view to a constant.

Reference: the cross-modal agreement of CLIP-style objectives (Radford et al.,
ICML 2021) and of multimodal contrastive fusion (e.g. Liang et al.,
"Factorized Contrastive Learning", NeurIPS 2023), applied here to the views
of the architecture search.
"""

from typing import Dict, Mapping, Tuple

import tensorflow as tf

from ssnas_tf.ssl.augment.seeds import _as_seed, _bernoulli, _fold


def split_sides(batch_size, num_modalities, seed, probability):
    """Per sample and modality, whether view 1 / view 2 keeps the modality.

    With probability `probability` a sample is split: each modality goes to
    one side at random, with at least one modality on each side. Otherwise
    both views keep every modality.

    Args:
        batch_size: N (a scalar tensor or int).
        num_modalities: M >= 2.
        seed: shape-(2,) int seed.
        probability: share of samples whose pair is split, in [0, 1].

    Returns:
        `(keep1, keep2)`, bool tensors of shape (N, M).
    """
    seed = _as_seed(seed)
    m = num_modalities
    side = _bernoulli([batch_size, m], _fold(seed, 0), 0.5)
    # One modality forced to each side, so neither view is empty.
    first = tf.random.stateless_uniform([batch_size], _fold(seed, 1), 0, m, tf.int32)
    shift = tf.random.stateless_uniform([batch_size], _fold(seed, 2), 1, m, tf.int32)
    second = (first + shift) % m
    side = tf.logical_or(side, tf.one_hot(first, m, on_value=True, off_value=False))
    side = tf.logical_and(side, tf.logical_not(
        tf.one_hot(second, m, on_value=True, off_value=False)))
    split = _bernoulli([batch_size, 1], _fold(seed, 3), probability)
    keep1 = tf.logical_or(tf.logical_not(split), side)
    keep2 = tf.logical_or(tf.logical_not(split), tf.logical_not(side))
    return keep1, keep2


def blank(value: tf.Tensor, keep: tf.Tensor) -> tf.Tensor:
    """`value` where the (N,) bool `keep` holds; zeros, padding or "" elsewhere."""
    shape = tf.concat([tf.shape(keep), tf.ones([value.shape.rank - 1], tf.int32)], 0)
    keep = tf.reshape(keep, shape)
    if value.dtype == tf.string:
        return tf.where(keep, value, tf.zeros_like(value))
    return value * tf.cast(keep, value.dtype)


def split_views(view1: Mapping[str, tf.Tensor], view2: Mapping[str, tf.Tensor],
                probability: float, seed) -> Tuple[Dict[str, tf.Tensor],
                                                   Dict[str, tf.Tensor]]:
    """Blanks complementary modality subsets of two views (see module doc).

    Args:
        view1, view2: dicts modality -> batch, with the same keys.
        probability: share of samples whose pair is split across modalities.
        seed: shape-(2,) int seed.

    Returns:
        The two views; unchanged when there is one modality or probability 0.
    """
    names = list(view1)
    if len(names) < 2 or probability <= 0:
        return dict(view1), dict(view2)
    n = tf.shape(view1[names[0]])[0]
    keep1, keep2 = split_sides(n, len(names), seed, probability)
    return ({k: blank(view1[k], keep1[:, i]) for i, k in enumerate(names)},
            {k: blank(view2[k], keep2[:, i]) for i, k in enumerate(names)})
