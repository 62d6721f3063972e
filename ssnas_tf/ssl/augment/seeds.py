"""Stateless seeds and the small random helpers every modality uses."""

import zlib
from typing import Tuple, Union

import tensorflow as tf

SeedLike = Union[int, Tuple[int, int], tf.Tensor]


def _as_seed(seed: SeedLike) -> tf.Tensor:
    """A shape-(2,) int64 seed from an int, a pair or a tensor."""
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise TypeError(f"seed must be integer, got {seed.dtype}")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros([], tf.int64)])
    seed.shape.assert_is_compatible_with([2])
    return tf.reshape(seed, [2])


def _fold(seed, data):
    # fold_in gives different seeds for int32 and int64 data of the same value,
    # so always fold int64 (tf.data's enumerate index is int64).
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))


def _name_key(name: str) -> int:
    # Stable across processes, unlike hash().
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def _uniform(shape, seed, minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=minval, maxval=maxval)


def _bernoulli(shape, seed, p):
    return _uniform(shape, seed) < p


def _select(apply, a, b):
    """Per-sample choice: `a` where the (N, 1, 1, 1) bool `apply` is True, else `b`."""
    # Exact for a 0/1 mask and about 3x faster on CPU than a broadcasting tf.where.
    weight = tf.cast(apply, a.dtype)
    return a * weight + b * (1.0 - weight)


def _to_unit_float(x):
    """uint8 0-255 -> float32 [0, 1]; float stays, as float32."""
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    return tf.cast(x, tf.float32)
