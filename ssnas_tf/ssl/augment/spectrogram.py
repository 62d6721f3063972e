"""Spectrogram augmentation: SpecAugment-style time and frequency masks."""

from typing import Optional

import tensorflow as tf

from ssnas_tf.ssl.augment.config import SpectrogramAugment
from ssnas_tf.ssl.augment.seeds import (SeedLike, _as_seed, _fold, _to_unit_float,
                                       _uniform)


def _band_masks(n, length, count, max_fraction, seed):
    """(n, length) bool: union of `count` random bands per row."""
    length_f = tf.cast(length, tf.float32)
    max_width = tf.floor(max_fraction * length_f)
    width = tf.floor(_uniform([n, count], _fold(seed, 0)) * (max_width + 1.0))
    start = tf.floor(_uniform([n, count], _fold(seed, 1)) * (length_f - width + 1.0))
    position = tf.cast(tf.range(length), tf.float32)[tf.newaxis, tf.newaxis, :]
    inside = ((position >= start[..., tf.newaxis])
              & (position < (start + width)[..., tf.newaxis]))
    return tf.reduce_any(inside, axis=1)


def augment_spectrograms(spectrograms, seed: SeedLike,
                         settings: Optional[SpectrogramAugment] = None):
    """Applies SpecAugment-style time and frequency masks to a batch.

    Args:
        spectrograms: (N, T, F, C) (C usually 1), uint8 0-255 or float in
            [0, 1].
        seed: shape-(2,) int seed (or a Python int).
        settings: a `SpectrogramAugment`. Defaults to `SpectrogramAugment()`.

    Returns:
        float32 (N, T, F, C) in the input's range (float32 in [0, 1] for
        uint8 input).
    """
    settings = settings or SpectrogramAugment()
    spectrograms = _to_unit_float(spectrograms)
    if not settings.enabled:
        return spectrograms
    if spectrograms.shape.rank != 4:
        raise ValueError(
            f"spectrograms must be (N, T, F, 1), got shape {spectrograms.shape}")
    seed = _as_seed(seed)
    shape = tf.shape(spectrograms)
    n = shape[0]
    mask = tf.zeros([n, shape[1], shape[2]], tf.bool)
    if settings.time_masks and settings.time_mask_max > 0:
        time = _band_masks(n, shape[1], settings.time_masks, settings.time_mask_max,
                           _fold(seed, 0))
        mask = mask | time[:, :, tf.newaxis]
    if settings.freq_masks and settings.freq_mask_max > 0:
        freq = _band_masks(n, shape[2], settings.freq_masks, settings.freq_mask_max,
                           _fold(seed, 1))
        mask = mask | freq[:, tf.newaxis, :]
    if settings.fill == "mean":
        fill = tf.reduce_mean(spectrograms, axis=[1, 2, 3], keepdims=True)
    else:
        fill = tf.zeros([n, 1, 1, 1], tf.float32)
    return tf.where(mask[..., tf.newaxis], fill, spectrograms)
