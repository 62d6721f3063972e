"""Per-modality data augmentation for the contrastive (SimCLR) steps.

Modules: `config` (settings dataclasses, `AugmentConfig`), `seeds`, `image`,
`vector`, `spectrogram`, `text` (sequences and raw text), `views` (batches and
view pairs). Everything public is re-exported here.

Every function here works on a BATCH (first axis = samples), draws its random
numbers per sample with stateless `tf.random` ops from an explicit seed, and is
plain TensorFlow, so it runs inside `tf.data.Dataset.map` after `.batch()`
(graph mode) and gives the same output for the same seed in every run and in
every pipeline (also with parallel `map`).

What each modality kind gets (see `ssnas_tf.data.base` for the array
conventions):

- `image`: SimCLR's recipe: random resized crop, horizontal flip, optional
  rotation, colour jitter (p 0.8), grayscale (p 0.2), Gaussian blur (p 0.5),
  clip to [0, 1].
- `vector`: Gaussian noise scaled by each feature's batch std, and feature
  dropout to the feature's batch mean.
- `spectrogram`: SpecAugment-style time and frequency masks.
- `sequence`: token masking, non-pad ids replaced by `MASK_ID`.
- `text`: whitespace-token masking with `"[MASK]"` (core TensorFlow ops).
- `tabular`: SCARF corruption, cells replaced by another row's cell of the
  same column.
- `audio`: random gain, Gaussian noise and a time mask on the waveform.

Images and spectrograms come out as float32 in [0, 1] (uint8 input is divided
by 255), vectors as float32, sequences keep their integer dtype and text stays
`tf.string`.

Seeds are shape-(2,) integer tensors (a Python int `s` means `(s, 0)`), the
convention of `tf.random.stateless_*`; no Keras random layer is used because
their seed generators are stateful, so their draws depend on call order and
are not reproducible under a parallel `map`. Sub-seeds are derived with
`tf.random.experimental.stateless_fold_in`: per modality from a CRC32 of the
modality name (so adding a modality does not change the others), per view from
the view index and per batch from the batch index (`make_view_pair_fn`).

Reference: Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020 (appendix A: data augmentation details); Park et
al., "SpecAugment", Interspeech 2019.
"""

from ssnas_tf.ssl.augment.config import (AudioAugment, AugmentConfig, ImageAugment,
                                        SequenceAugment, SpectrogramAugment, TabularAugment,
                                        TextAugment, VectorAugment)
from ssnas_tf.ssl.augment.image import augment_images
from ssnas_tf.ssl.augment.seeds import SeedLike
from ssnas_tf.ssl.augment.spectrogram import augment_spectrograms
from ssnas_tf.ssl.augment.table_audio import augment_waveforms, corrupt_rows
from ssnas_tf.ssl.augment.text import mask_sequences, mask_text
from ssnas_tf.ssl.augment.vector import augment_vectors
from ssnas_tf.ssl.augment.views import augment_batch, make_view_pair_fn, two_views

__all__ = [
    "SeedLike",
    "AudioAugment",
    "AugmentConfig",
    "ImageAugment",
    "SequenceAugment",
    "SpectrogramAugment",
    "TabularAugment",
    "TextAugment",
    "VectorAugment",
    "augment_batch",
    "augment_images",
    "augment_spectrograms",
    "augment_vectors",
    "augment_waveforms",
    "corrupt_rows",
    "make_view_pair_fn",
    "mask_sequences",
    "mask_text",
    "two_views",
]
