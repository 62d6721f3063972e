"""tf.data pipelines over a `MultimodalDataset`: view pairs and labeled batches.

Pipelines shuffle sample *indices*, never the data: each epoch is a seeded
permutation of the split's indices, cut into batches, and only then are the
batch's rows read from the dataset's arrays (`dataset.inputs[name][rows]`, a
numpy array in memory or a `ssnas_tf.data.streaming` view of files on disk) and
converted. Memory therefore stays at a few batches, whatever the dataset size.

Epoch `e`'s order depends only on (seed, e), and augmentation only on (seed,
batch number), so a pipeline started at `start_epoch` yields exactly the batches
an uninterrupted one yields from that epoch on (resuming a run relies on it).

Models take a dict modality -> tensor with images and spectrograms as float32
in [0, 1]; `to_model_inputs` does that conversion (the no-augmentation path of
`ssnas_tf.ssl.augment`), so training, evaluation and serving see the same inputs.
"""

import numpy as np
import tensorflow as tf

from ssnas_tf.ssl.augment import AugmentConfig, augment_batch, make_view_pair_fn
from ssnas_tf.seeds import derive_seed

AUTOTUNE = tf.data.AUTOTUNE
_NO_AUGMENT = AugmentConfig.none()
# The functions mapped here have no tensor-dependent Python control flow, so
# autograph's source conversion (about 2-3 s of a short run) is skipped.
_plain = tf.autograph.experimental.do_not_convert


def to_model_inputs(features, kinds):
    """uint8 images/spectrograms -> float32 [0, 1]; other kinds unchanged."""
    return augment_batch(features, kinds, _NO_AUGMENT, seed=0)


def steps_per_epoch(num_samples, batch_size, max_steps=None):
    """Full batches per epoch, at most `max_steps` (None: no cap)."""
    steps = max(1, num_samples // min(batch_size, num_samples))
    return min(steps, max_steps) if max_steps else steps


def _index_batches(index, batch_size, seed, shuffle, repeat, start_epoch,
                   drop_remainder, max_steps=None):
    """Batches of sample indices: one seeded permutation per epoch.

    With `max_steps`, an epoch is its permutation's first `max_steps` batches.
    """
    n = len(index)
    index = tf.constant(np.asarray(index, dtype=np.int64))

    @_plain
    def epoch_batches(epoch):
        rows = (tf.random.experimental.stateless_shuffle(
            index, seed=tf.stack([tf.cast(seed, tf.int64), epoch])) if shuffle else index)
        return tf.data.Dataset.from_tensor_slices(rows).batch(
            batch_size, drop_remainder=drop_remainder).take(max_steps or -1)

    epochs = (tf.data.Dataset.counter(start_epoch) if repeat
              else tf.data.Dataset.from_tensors(tf.constant(start_epoch, tf.int64)))
    # flat_map hides the length, which Keras's fit/predict use.
    length = (tf.data.INFINITE_CARDINALITY if repeat else
              n // batch_size if drop_remainder else -(-n // batch_size))
    return epochs.flat_map(epoch_batches).apply(
        tf.data.experimental.assert_cardinality(length))


def _row_reader(dataset, with_labels):
    """A tf function: int64 index batch -> the rows' features (and labels)."""
    names = list(dataset.inputs)
    arrays = [dataset.inputs[n] for n in names]
    specs = [_spec(a, dataset.kinds[n]) for n, a in zip(names, arrays)]
    if with_labels:
        labels = dataset.labels
        label_dtype = np.float32 if dataset.multilabel else np.int64
        specs.append((label_dtype, labels.shape[1:]))

    def read(rows):
        # Sorted reads are sequential on disk; the batch keeps the shuffled order.
        order = np.argsort(rows, kind="stable")
        restore = np.argsort(order, kind="stable")
        sorted_rows = rows[order]
        out = [_to_numpy(a[sorted_rows], dataset.kinds[n])[restore]
               for n, a in zip(names, arrays)]
        if with_labels:
            out.append(labels[sorted_rows][restore].astype(specs[-1][0]))
        return out

    @_plain
    def fetch(rows):
        tensors = tf.numpy_function(read, [rows], [tf.as_dtype(d) for d, _ in specs],
                                    stateful=False)
        for tensor, (_, shape) in zip(tensors, specs):
            tensor.set_shape((None,) + tuple(shape))
        features = dict(zip(names, tensors[:len(names)]))
        return (features, tensors[-1]) if with_labels else features
    return fetch


def _spec(array, kind):
    if kind == "text":
        return np.object_, ()
    return np.dtype(array.dtype), tuple(array.shape[1:])


def _to_numpy(rows, kind):
    rows = np.asarray(rows)
    if kind == "text":
        return np.array([r.encode("utf-8") if isinstance(r, str) else bytes(r)
                         for r in rows], dtype=object)
    return rows


def _ordered(ds, deterministic):
    """Parallel maps keep their input order (tf.data's default, made explicit
    so a global `deterministic=False` option cannot reorder a run's batches)."""
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return ds.with_options(options)


def view_pairs(dataset, index, batch_size, augment_config, seed, start_epoch=0,
               max_steps=None, deterministic=True):
    """Endless, shuffled (view1, view2) batches of the samples at `index`.

    Epochs are `len(index) // batch_size` batches (the remainder is dropped).
    Each batch's augmentation is seeded from (seed, batch number), so a run is
    reproducible, also when started at `start_epoch`.

    Args:
        dataset: the `MultimodalDataset`.
        index: the sample indices (a split).
        batch_size: samples per batch (capped at `len(index)`).
        augment_config: an `AugmentConfig`.
        seed: the order and the augmentation get independent seeds derived
            from it (`ssnas_tf.seeds.derive_seed`).
        start_epoch: the first epoch to yield. Defaults to 0.
        max_steps: cap on the batches per epoch. Defaults to None (no cap).
        deterministic: False lets parallel maps emit batches out of order
            (not reproducible). Defaults to True.
    """
    batch_size = min(batch_size, len(index))
    steps = steps_per_epoch(len(index), batch_size, max_steps)
    ds = _index_batches(index, batch_size, derive_seed(seed, "shuffle"), True, True,
                        start_epoch, True, max_steps)
    ds = ds.map(_row_reader(dataset, False), num_parallel_calls=AUTOTUNE)
    ds = ds.enumerate(start=start_epoch * steps)
    pair_fn = make_view_pair_fn(dataset.kinds, augment_config,
                                seed=derive_seed(seed, "augment"))
    return _ordered(ds.map(pair_fn, num_parallel_calls=AUTOTUNE).prefetch(AUTOTUNE),
                    deterministic)


def labeled_batches(dataset, index, batch_size, seed=None, shuffle=False,
                    repeat=False, augment_config=None, start_epoch=0, max_steps=None,
                    deterministic=True):
    """(inputs, labels) batches; optionally shuffled, endless and augmented.

    Args:
        dataset: the `MultimodalDataset`.
        index: the sample indices (a split).
        batch_size: samples per batch (capped at `len(index)`).
        seed: the order and the augmentation get independent seeds derived
            from it. Defaults to None (0).
        shuffle: a new seeded order every epoch. Defaults to False.
        repeat: endless, epochs of `len(index) // batch_size` full batches;
            otherwise one pass with a smaller last batch. Defaults to False.
        augment_config: an `AugmentConfig`, or None for no augmentation.
        start_epoch: the first epoch to yield. Defaults to 0.
        max_steps: cap on the batches per epoch when `repeat`. Defaults to
            None (no cap).
        deterministic: False lets parallel maps emit batches out of order.
            Defaults to True.
    """
    seed = 0 if seed is None else seed
    batch_size = min(batch_size, len(index))
    max_steps = max_steps if repeat else None
    ds = _index_batches(index, batch_size, derive_seed(seed, "shuffle"), shuffle, repeat,
                        start_epoch, repeat, max_steps)
    ds = ds.map(_row_reader(dataset, True), num_parallel_calls=AUTOTUNE)
    kinds = dataset.kinds
    if augment_config is None:
        ds = ds.map(_plain(lambda x, y: (to_model_inputs(x, kinds), y)),
                    num_parallel_calls=AUTOTUNE)
    else:
        steps = steps_per_epoch(len(index), batch_size, max_steps)
        augment_seed = derive_seed(seed, "augment")
        ds = ds.enumerate(start=start_epoch * steps).map(
            _plain(lambda i, xy: (augment_batch(
                xy[0], kinds, augment_config,
                seed=tf.stack([tf.constant(augment_seed, tf.int64), i])), xy[1])),
            num_parallel_calls=AUTOTUNE)
    return _ordered(ds.prefetch(AUTOTUNE), deterministic)


def model_inputs(dataset, index, batch_size=256):
    """Model-ready input batches of the samples at `index`, in order (no labels).

    For scoring: `model.predict(model_inputs(ds, test))` converts one batch at
    a time instead of a whole split.
    """
    ds = _index_batches(index, min(batch_size, len(index)), 0, False, False, 0, False)
    kinds = dataset.kinds
    return (ds.map(_row_reader(dataset, False), num_parallel_calls=AUTOTUNE)
            .map(_plain(lambda x: to_model_inputs(x, kinds)), num_parallel_calls=AUTOTUNE)
            .prefetch(AUTOTUNE))
