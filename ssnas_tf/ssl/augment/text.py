"""Token sequences and raw text: masking, core TensorFlow ops only."""

from typing import Optional

import tensorflow as tf

from ssnas_tf.ssl.augment.config import SequenceAugment, TextAugment
from ssnas_tf.ssl.augment.seeds import SeedLike, _as_seed, _bernoulli


def mask_sequences(sequences, seed: SeedLike, settings: Optional[SequenceAugment] = None):
    """Replaces random non-pad token ids by the mask id.

    Args:
        sequences: int (N, T) token ids, `PAD_ID` for padding.
        seed: shape-(2,) int seed (or a Python int).
        settings: a `SequenceAugment`. Defaults to `SequenceAugment()`.

    Returns:
        (N, T) ids of the input's dtype.
    """
    settings = settings or SequenceAugment()
    sequences = tf.convert_to_tensor(sequences)
    if not settings.enabled or settings.mask_prob == 0:
        return sequences
    seed = _as_seed(seed)
    masked = (_bernoulli(tf.shape(sequences), seed, settings.mask_prob)
              & tf.not_equal(sequences, tf.cast(settings.pad_id, sequences.dtype)))
    return tf.where(masked, tf.cast(settings.mask_id, sequences.dtype), sequences)


def mask_text(text, seed: SeedLike, settings: Optional[TextAugment] = None):
    """Replaces random whitespace tokens of raw strings by "[MASK]".

    No normalisation happens here: the text models normalise inside
    `TextVectorization` (`ssnas_tf.backbones.layers.standardize_text`), so
    augmented views, fine-tuning and the served model see the same strings.
    Core TensorFlow ops only (no tensorflow-text).

    Tokens come from `tf.strings.split` (ASCII whitespace, the split
    `TextVectorization` uses) and are joined back with single spaces, so runs
    of whitespace (newlines, tabs, double spaces) become one space; the token
    count is kept.

    Args:
        text: tf.string tensor of any shape, usually (N,).
        seed: shape-(2,) int seed (or a Python int).
        settings: a `TextAugment`. Defaults to `TextAugment()`.

    Returns:
        tf.string tensor of the input's shape.
    """
    settings = settings or TextAugment()
    text = tf.convert_to_tensor(text)
    if not settings.enabled or settings.mask_prob == 0:
        return text
    seed = _as_seed(seed)
    tokens = tf.strings.split(tf.reshape(text, [-1]))
    values = tokens.flat_values
    masked = _bernoulli(tf.shape(values), seed, settings.mask_prob)
    values = tf.where(masked, tf.constant(settings.mask_token), values)
    joined = tf.strings.reduce_join(tokens.with_flat_values(values), axis=-1,
                                    separator=" ")
    return tf.reshape(joined, tf.shape(text))
