"""Table rows (SCARF corruption) and waveforms (gain, noise, time mask)."""

from typing import Optional

import tensorflow as tf

from ssnas_tf.ssl.augment.config import AudioAugment, TabularAugment
from ssnas_tf.ssl.augment.seeds import SeedLike, _as_seed, _bernoulli, _fold, _uniform


def corrupt_rows(rows, seed: SeedLike, settings: Optional[TabularAugment] = None):
    """Replaces random cells by the same column's cell of another row (SCARF).

    Args:
        rows: float (N, C) `tabular` array (NaN = missing, categories as ids).
        seed: shape-(2,) int seed (or a Python int).
        settings: a `TabularAugment`. Defaults to `TabularAugment()`.

    Returns:
        float32 (N, C), every value one the column held in the batch.
    """
    settings = settings or TabularAugment()
    rows = tf.cast(rows, tf.float32)
    if not settings.enabled or settings.corruption == 0:
        return rows
    seed = _as_seed(seed)
    order = tf.random.experimental.stateless_shuffle(tf.range(tf.shape(rows)[0]),
                                                     _fold(seed, 0))
    corrupt = _bernoulli(tf.shape(rows), _fold(seed, 1), settings.corruption)
    return tf.where(corrupt, tf.gather(rows, order), rows)


def augment_waveforms(waves, seed: SeedLike, settings: Optional[AudioAugment] = None):
    """Random gain, Gaussian noise and one time mask per clip.

    Args:
        waves: float (N, L) waveforms in [-1, 1].
        seed: shape-(2,) int seed (or a Python int).
        settings: an `AudioAugment`. Defaults to `AudioAugment()`.

    Returns:
        float32 (N, L) in [-1, 1].
    """
    settings = settings or AudioAugment()
    waves = tf.cast(waves, tf.float32)
    if not settings.enabled:
        return waves
    seed = _as_seed(seed)
    n, length = tf.shape(waves)[0], tf.shape(waves)[1]
    gain_db = _uniform([n, 1], _fold(seed, 0), -settings.gain_db, settings.gain_db)
    out = waves * tf.pow(10.0, gain_db / 20.0)
    if settings.noise_std > 0:
        out += settings.noise_std * tf.random.stateless_normal(tf.shape(waves),
                                                               _fold(seed, 1))
    if settings.time_mask_max > 0:
        size = tf.cast(length, tf.float32)
        width = _uniform([n, 1], _fold(seed, 2), 0.0, settings.time_mask_max) * size
        start = _uniform([n, 1], _fold(seed, 3)) * (size - width)
        position = tf.cast(tf.range(length), tf.float32)[None, :]
        keep = tf.logical_or(position < start, position >= start + width)
        out = tf.where(keep, out, tf.zeros_like(out))
    return tf.clip_by_value(out, -1.0, 1.0)
