"""Whole batches: every modality augmented from its own seed; two views per
batch; the `tf.data` map function that makes view pairs."""

from typing import Callable, Dict, Mapping, Optional, Tuple

import tensorflow as tf

from ssnas_tf.ssl.augment.config import AugmentConfig
from ssnas_tf.ssl.augment.cross_modal import split_views
from ssnas_tf.ssl.augment.image import augment_images
from ssnas_tf.ssl.augment.seeds import SeedLike, _as_seed, _fold, _name_key
from ssnas_tf.ssl.augment.spectrogram import augment_spectrograms
from ssnas_tf.ssl.augment.table_audio import augment_waveforms, corrupt_rows
from ssnas_tf.ssl.augment.text import mask_sequences, mask_text
from ssnas_tf.ssl.augment.vector import augment_vectors


_KIND_FUNCTIONS: Dict[str, Callable] = {
    "image": augment_images,
    "vector": augment_vectors,
    "spectrogram": augment_spectrograms,
    "sequence": mask_sequences,
    "text": mask_text,
    "tabular": corrupt_rows,
    "audio": augment_waveforms,
}


def augment_batch(features: Mapping[str, tf.Tensor], kinds: Mapping[str, str],
                  config: Optional[AugmentConfig] = None,
                  seed: SeedLike = 0) -> Dict[str, tf.Tensor]:
    """Augments every modality of a batch independently.

    Each modality draws from its own seed, `fold_in(seed, crc32(name))`, so its
    randomness does not depend on which other modalities are present.

    Args:
        features: modality name -> batch (first axis = samples).
        kinds: modality name -> kind (one of `MODALITY_KINDS`); must cover
            every key of `features` (extra names are ignored).
        config: an `AugmentConfig`. Defaults to `AugmentConfig()`.
        seed: shape-(2,) int seed (or a Python int). Defaults to 0.

    Returns:
        A dict with the same keys (and order): images and spectrograms float32
        in [0, 1], vectors float32, sequences in their int dtype, text strings.

    Example:

    >>> batch = {"image": tf.zeros([4, 16, 16, 1], tf.uint8),
    ...          "text": tf.constant(["a b c", "d e", "f", ""])}
    >>> out = augment_batch(batch, {"image": "image", "text": "text"},
    ...                     AugmentConfig(), seed=(0, 1))
    >>> out["image"].dtype
    tf.float32
    """
    config = config or AugmentConfig()
    missing = [name for name in features if name not in kinds]
    if missing:
        raise ValueError(f"no kind given for modalities {missing}; kinds names "
                         f"{sorted(kinds)}")
    seed = _as_seed(seed)
    out = {}
    for name, value in features.items():
        kind = kinds[name]
        settings = config.settings_for(name, kind)
        out[name] = _KIND_FUNCTIONS[kind](value, _fold(seed, _name_key(name)), settings)
    return out


def two_views(features: Mapping[str, tf.Tensor], kinds: Mapping[str, str],
              config: Optional[AugmentConfig] = None,
              seed: SeedLike = 0) -> Tuple[Dict[str, tf.Tensor], Dict[str, tf.Tensor]]:
    """Two independently augmented views of the same batch.

    The views use the seeds `fold_in(seed, 1)` and `fold_in(seed, 2)`; with
    `config.cross_modal` > 0, that share of the samples is then split across
    modalities with the seed `fold_in(seed, 3)`.

    Args:
        features: modality name -> batch (first axis = samples).
        kinds: modality name -> kind.
        config: an `AugmentConfig`. Defaults to `AugmentConfig()`.
        seed: shape-(2,) int seed (or a Python int). Defaults to 0.

    Returns:
        `(view1, view2)`, two dicts as returned by `augment_batch`.
    """
    config = config or AugmentConfig()
    seed = _as_seed(seed)
    view1 = augment_batch(features, kinds, config, _fold(seed, 1))
    view2 = augment_batch(features, kinds, config, _fold(seed, 2))
    if config.cross_modal:
        return split_views(view1, view2, config.cross_modal, _fold(seed, 3))
    return view1, view2


def make_view_pair_fn(kinds: Mapping[str, str], config: Optional[AugmentConfig] = None,
                      seed: SeedLike = 0):
    """A `Dataset.map` function giving two views per batch, seeded by batch index.

    The returned `fn(index, features)` computes
    `two_views(features, kinds, config, fold_in(seed, index))`, so it takes the
    elements of `ds.batch(b).enumerate()`; the output only depends on `seed`,
    the batch index and the batch, also under `num_parallel_calls`. Put
    `.repeat()` before `.enumerate()` (or change `seed` per epoch) to get new
    augmentations in every epoch.

    Args:
        kinds: modality name -> kind.
        config: an `AugmentConfig`. Defaults to `AugmentConfig()`.
        seed: base shape-(2,) int seed (or a Python int). Defaults to 0.

    Returns:
        A function `(index, features) -> (view1, view2)`.

    Example:

    >>> inputs = {"image": tf.zeros([10, 16, 16, 1], tf.uint8),
    ...           "vector": tf.zeros([10, 5])}
    >>> kinds = {"image": "image", "vector": "vector"}
    >>> fn = make_view_pair_fn(kinds, AugmentConfig(), seed=42)
    >>> ds = (tf.data.Dataset.from_tensor_slices(inputs).batch(4)
    ...       .enumerate().map(fn, num_parallel_calls=tf.data.AUTOTUNE))
    >>> view1, view2 = next(iter(ds))
    >>> view1["image"].shape
    TensorShape([4, 16, 16, 1])
    """
    config = config or AugmentConfig()
    for name, kind in kinds.items():
        config.settings_for(name, kind)  # Fail early on bad kinds or overrides.
    base = _as_seed(seed)
    kinds = dict(kinds)

    # No tensor-dependent Python control flow here: skipping autograph's
    # source conversion makes tracing several times faster.
    @tf.autograph.experimental.do_not_convert
    def view_pair(index, features):
        batch_seed = _fold(base, index)
        return two_views(features, kinds, config, batch_seed)

    return view_pair
