"""The modality kinds and the reserved token ids every layer shares.

A leaf module (it imports nothing), so data loaders, augmentations and
backbones agree on them without importing each other. The array convention of
each kind is in `ssnas_tf.data.base`.
"""

MODALITY_KINDS = ("image", "vector", "spectrogram", "sequence", "text", "tabular", "audio")
PAD_ID = 0  # token id of padding in `sequence` arrays
MASK_ID = 1  # token id of a masked or out-of-vocabulary token

__all__ = ["MASK_ID", "MODALITY_KINDS", "PAD_ID"]
