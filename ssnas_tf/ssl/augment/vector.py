"""Vector augmentation: per-feature scaled Gaussian noise and feature dropout."""

from typing import Optional

import tensorflow as tf

from ssnas_tf.ssl.augment.config import VectorAugment
from ssnas_tf.ssl.augment.seeds import SeedLike, _as_seed, _bernoulli, _fold


def augment_vectors(vectors, seed: SeedLike, settings: Optional[VectorAugment] = None):
    """Adds per-feature scaled Gaussian noise and feature dropout to a batch.

    Args:
        vectors: float (N, D) raw features.
        seed: shape-(2,) int seed (or a Python int).
        settings: a `VectorAugment`. Defaults to `VectorAugment()`.

    Returns:
        float32 (N, D).
    """
    settings = settings or VectorAugment()
    vectors = tf.cast(vectors, tf.float32)
    if not settings.enabled:
        return vectors
    seed = _as_seed(seed)
    shape = tf.shape(vectors)
    mean, variance = tf.nn.moments(vectors, axes=[0], keepdims=True)
    out = vectors
    if settings.noise_std > 0:
        scale = settings.noise_std * (tf.sqrt(variance) if settings.relative_noise else 1.0)
        out = out + tf.random.stateless_normal(shape, _fold(seed, 0)) * scale
    if settings.feature_dropout > 0:
        drop = _bernoulli(shape, _fold(seed, 1), settings.feature_dropout)
        out = tf.where(drop, tf.broadcast_to(mean, shape), out)
    return out
