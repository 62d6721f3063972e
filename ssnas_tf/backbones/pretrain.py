"""Unimodal contrastive (SimCLR) pretraining of each backbone."""

import dataclasses
from typing import Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from ssnas_tf.backbones.small import _as_tap_dict, backbones_by_modality
from ssnas_tf.data.pipelines import steps_per_epoch, view_pairs
from ssnas_tf.ssl import augment as augment_lib
from ssnas_tf.ssl.contrastive_model import ContrastiveModel, JointContrastiveModel
from ssnas_tf.ssl.heads import ProjectionHead
from ssnas_tf.devices import follow_scope_strategy
from ssnas_tf.optimizers import Adam, build_optimizer
from ssnas_tf.seeds import derive_seed
from ssnas_tf.errors import ConfigError, DataError

# ---------------------------------------------------------------------------
# Unimodal contrastive pretraining.


def _pool(taps):
    """Global average pool of every tap to (N, D), concatenated."""
    pooled = []
    for tap in taps.values():
        rank = len(tap.shape)
        pooled.append(tap if rank == 2 else ops.mean(tap, axis=tuple(range(1, rank - 1))))
    return ops.concatenate(pooled, axis=-1) if len(pooled) > 1 else pooled[0]


def _contrastive_model(modality, backbone, seed, temperature, projection_dim):
    """The backbone's taps, pooled and concatenated, as the encoder of a
    `ContrastiveModel` with a fresh projection head; built without a batch."""
    # The projection head's initial weights depend on the modality alone, not
    # on which other modalities are pretrained with it.
    keras.utils.set_random_seed(derive_seed(seed, modality, "init"))
    spec = backbone.inputs[0]
    raw = keras.Input(spec.shape[1:], dtype=spec.dtype, name=modality)
    encoder = keras.Model({modality: raw}, _pool(_as_tap_dict(backbone(raw), modality)))
    head = ProjectionHead(projection_dim, name=f"{modality}_pretrain_projection")
    head.build((None, encoder.output.shape[-1]))
    model = follow_scope_strategy(ContrastiveModel(encoder, head, temperature=temperature))
    model.built = True  # its parts are; a first batch would only build them
    return model


def _pretrain_jointly(backbones, datasets, index, config, epochs, batch_size, seed,
                      temperature, learning_rate, projection_dim, verbose, max_steps,
                      checkpoint=None):
    """One fit of a `JointContrastiveModel` over `backbones` (modality -> model);
    returns modality -> per-epoch mean losses."""
    n = len(index)
    if n < 2:
        raise DataError(f"pretraining {list(backbones)} needs at least 2 samples, got {n}")
    batch = min(batch_size, n)
    model = follow_scope_strategy(JointContrastiveModel(
        {m: _contrastive_model(m, b, seed, temperature, projection_dim)
         for m, b in backbones.items()}, name="joint_backbone_pretraining"))
    model.built = True
    model.compile(Adam(learning_rate))
    build_optimizer(model)  # before its state is restored, and out of the trace

    def batches(start_epoch):
        # Rows are read a batch at a time (the data may be on disk). Each
        # modality gets its own order and augmentation seeds (SeedSequence,
        # not seed + k), the ones it had when it was trained alone; epoch e's
        # batches do not depend on where we start.
        return tf.data.Dataset.zip({
            m: view_pairs(datasets[m], index, batch, config, derive_seed(seed, m),
                          start_epoch, max_steps=max_steps) for m in backbones})
    callbacks = [_EpochPrinter()] if verbose else []
    initial_epoch = 0
    if checkpoint is not None:
        saver = checkpoint(model)
        initial_epoch = saver.restore()
        callbacks.append(saver.callback())  # last: it saves what the others did
    if initial_epoch >= epochs:
        return {m: [] for m in backbones}
    logs = model.fit(batches(initial_epoch), epochs=epochs, initial_epoch=initial_epoch,
                     steps_per_epoch=steps_per_epoch(n, batch, max_steps),
                     shuffle=False, verbose=0, callbacks=callbacks)
    return {m: [float(v) for v in logs.history[f"{m}_loss"]] for m in backbones}


class _EpochPrinter(keras.callbacks.Callback):
    """One line per pretraining epoch: each modality's mean loss."""

    def on_epoch_end(self, epoch, logs=None):
        losses = ", ".join(f"{m} {logs[f'{m}_loss']:.4f}" for m in self.model.names)
        print(f"pretrain backbones: epoch {epoch + 1}/{self.params['epochs']} "
              f"loss {losses}", flush=True)


def pretrain_backbones(backbones, dataset, train_index,
                       augment_config: Optional[augment_lib.AugmentConfig] = None,
                       epochs: int = 10, batch_size: int = 128, seed: int = 0,
                       temperature: float = 0.5, verbose: int = 1, *,
                       learning_rate: float = 1e-3, projection_dim: int = 128,
                       modalities: Optional[Sequence[str]] = None,
                       return_history: bool = False,
                       max_steps_per_epoch: Optional[int] = None,
                       checkpoint=None):
    """Unimodal SimCLR pretraining of each modality's backbone, without labels.

    For each modality: batches of its `train_index` rows (labels are never
    read), two views per batch from `ssnas_tf.ssl.augment`, the backbone on
    both views (one batch, so BatchNorm sees 2N samples), every tap globally
    average-pooled and concatenated, a fresh `ProjectionHead`, NT-Xent loss;
    Adam updates that backbone's trainable weights and the head (discarded
    afterwards). Other modalities' weights, and frozen layers, are untouched;
    BatchNorm moving statistics of the trained backbone are updated.

    All modalities train in one fit of a `JointContrastiveModel` (one tracing,
    one input pipeline) on the sum of their losses, with one Adam. This
    computes what one fit per modality computes: no variable is shared, so
    each modality's gradient is its own loss's, Adam's update of a variable
    reads only its own gradient and slots, every modality takes the same
    steps, and each keeps its own seeds for order, augmentation and head
    initialisation. Under mixed_float16 the one loss scale is shared: a step
    that overflows in one modality is skipped for all of them.

    This replaces the BM-NAS reference's text backbone, which stays random and
    is never trained (a known defect): pretrain before searching.

    Batches drop the remainder (n // batch_size steps per epoch, reshuffled
    each epoch); with fewer rows than `batch_size` one batch of all rows is
    used.

    Args:
        backbones: a `build_backbones` model, or a dict modality -> backbone
            model (one input, dict of taps) updated in place.
        dataset: the `MultimodalDataset` the inputs come from.
        train_index: the rows to pretrain on (the unlabeled training pool).
        augment_config: an `AugmentConfig`. Defaults to None
            (`AugmentConfig()`).
        epochs: passes over the rows. Defaults to 10.
        batch_size: samples per batch (2x views). Defaults to 128.
        seed: the root of the shuffling and augmentation seeds (each modality
            and each use gets its own, `ssnas_tf.seeds.derive_seed`).
            Defaults to 0.
        temperature: NT-Xent tau. Defaults to 0.5 (SimCLR's small-batch value).
        verbose: print one line per epoch when true. Defaults to 1.
        learning_rate: Adam learning rate. Defaults to 1e-3.
        projection_dim: projection head output size. Defaults to 128.
        modalities: the modalities to pretrain. Defaults to None (all).
        return_history: return per-epoch mean losses instead of the last one.
            Defaults to False.
        max_steps_per_epoch: cap on the batches per epoch. Defaults to None.
        checkpoint: the resume point: a callable taking the joint model
            (compiled, optimizer built) and returning an object with
            `restore()` (restores model and optimizer, returns the epoch to
            start at) and `callback()` (a Keras callback that saves them after
            each epoch), e.g. `ssnas_tf.workflow.resume.BackboneCheckpoint`.
            Defaults to None (no checkpoints).

    Returns:
        modality -> mean loss of the last epoch (a list of per-epoch means with
        `return_history=True`); None for a modality without trainable weights
        (a frozen backbone, skipped).

    Example:

    >>> data = load_dataset("mfeat")
    >>> model = build_backbones(data, train_index)
    >>> losses = pretrain_backbones(model, data, train_index, AugmentConfig(),
    ...                             epochs=5, batch_size=128, seed=0)
    """
    models, modalities = _checked_request(backbones, dataset, modalities, epochs,
                                          batch_size)
    config = augment_config or augment_lib.AugmentConfig()
    index = np.asarray(train_index, dtype=np.int64)
    trained = {}
    for modality in modalities:
        if models[modality].trainable_weights:
            trained[modality] = models[modality]
        elif verbose:
            print(f"pretrain {modality}: no trainable weights, skipped")
    # Each modality reads its own inputs only, as when it was trained alone.
    datasets = {m: dataclasses.replace(dataset, inputs={m: dataset.inputs[m]},
                                       kinds={m: dataset.kinds[m]}) for m in trained}
    histories = (_pretrain_jointly(trained, datasets, index, config, epochs, batch_size,
                                   seed, temperature, learning_rate, projection_dim,
                                   verbose, max_steps_per_epoch, checkpoint)
                 if trained else {})
    results = {}
    for modality in modalities:
        history = histories.get(modality)
        results[modality] = (history if return_history or history is None
                             else (history or [None])[-1])
    return results


def _checked_request(backbones, dataset, modalities, epochs, batch_size):
    """(modality -> backbone, modalities to pretrain); ConfigError on a bad request."""
    models = (dict(backbones) if isinstance(backbones, Mapping)
              else backbones_by_modality(backbones))
    modalities = list(models if modalities is None else modalities)
    unknown = [m for m in modalities if m not in models or m not in dataset.inputs]
    if unknown:
        raise ConfigError(f"cannot pretrain {unknown}: backbones exist for "
                         f"{list(models)}, the dataset has {list(dataset.modalities)}")
    if epochs < 1 or batch_size < 2:
        raise ConfigError(f"need epochs >= 1 and batch_size >= 2, got {epochs}, "
                         f"{batch_size}")
    return models, modalities
