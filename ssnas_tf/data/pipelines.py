"""tf.data pipelines over a `MultimodalDataset`: view pairs and labeled batches.

Models take a dict modality -> tensor with images and spectrograms as float32
in [0, 1]; `to_model_inputs` does that conversion (the no-augmentation path of
`ssnas_tf.ssl.augment`), so training, evaluation and serving see the same inputs.
"""

import numpy as np
import tensorflow as tf

from ssnas_tf.ssl.augment import AugmentConfig, augment_batch, make_view_pair_fn

AUTOTUNE = tf.data.AUTOTUNE
_NO_AUGMENT = AugmentConfig.none()


def to_model_inputs(features, kinds):
    """uint8 images/spectrograms -> float32 [0, 1]; other kinds unchanged."""
    return augment_batch(features, kinds, _NO_AUGMENT, seed=0)


def _slices(dataset, index):
    return {name: array[index] for name, array in dataset.inputs.items()}


def view_pairs(dataset, index, batch_size, augment_config, seed):
    """Endless, shuffled (view1, view2) batches of the samples at `index`.

    Each batch's augmentation is seeded from (seed, batch number), so a run is
    reproducible.
    """
    batch_size = min(batch_size, len(index))
    ds = tf.data.Dataset.from_tensor_slices(_slices(dataset, index))
    ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    ds = ds.repeat().batch(batch_size, drop_remainder=True).enumerate()
    pair_fn = make_view_pair_fn(dataset.kinds, augment_config, seed=seed)
    return ds.map(pair_fn, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE)


def labeled_batches(dataset, index, batch_size, seed=None, shuffle=False,
                    repeat=False, augment_config=None):
    """(inputs, labels) batches; optionally shuffled, endless and augmented."""
    labels = dataset.labels[index]
    labels = labels.astype(np.float32) if dataset.multilabel else labels.astype(np.int64)
    ds = tf.data.Dataset.from_tensor_slices((_slices(dataset, index), labels))
    if shuffle:
        ds = ds.shuffle(len(index), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()
    ds = ds.batch(min(batch_size, len(index)), drop_remainder=repeat)
    kinds = dataset.kinds
    if augment_config is None:
        ds = ds.map(lambda x, y: (to_model_inputs(x, kinds), y),
                    num_parallel_calls=AUTOTUNE)
    else:
        ds = ds.enumerate().map(
            lambda i, xy: (augment_batch(
                xy[0], kinds, augment_config,
                seed=tf.stack([tf.cast(seed or 0, tf.int64), i])), xy[1]),
            num_parallel_calls=AUTOTUNE)
    return ds.prefetch(AUTOTUNE)


def steps_per_epoch(num_samples, batch_size):
    return max(1, num_samples // min(batch_size, num_samples))
