"""The in-memory multimodal dataset every loader returns.

A loader reads files in their published layout and returns a `MultimodalDataset`:
one numpy array per modality (first axis = samples), labels, label names and,
when the source fixes them, the split indices. Everything downstream (splits by
label fraction, augmentation, backbones, export) works from this one container.

Modality kinds and their array conventions:

| kind          | array                         | notes                                  |
|---------------|-------------------------------|----------------------------------------|
| `image`       | uint8 (N, H, W, C) 0-255, or float32 in [0, 1] | channels-last, RGB (or 1 channel) |
| `vector`      | float32 (N, D)                | raw numeric features (backbones normalise) |
| `spectrogram` | uint8 (N, T, F, 1) 0-255, or float32 in [0, 1] | time x frequency, one channel |
| `sequence`    | int32 (N, T)                  | token ids, 0 = padding, 1 = mask/OOV   |
| `text`        | object (N,) of str            | raw strings; vectorised inside the model |
| `tabular`     | float32 (N, C)                | table columns: numbers (NaN = missing) and hashed categories (`ssnas_tf.data.tabular`) |
| `audio`       | float32 (N, L) in [-1, 1]     | mono waveforms at `extras["audio_sample_rate"]`; log-mel inside the model |
"""

import dataclasses
from typing import Dict, Optional, Tuple

import numpy as np

from ssnas_tf.errors import DataError
from ssnas_tf.modalities import MASK_ID, MODALITY_KINDS, PAD_ID  # noqa: F401 (re-exported)

SPLIT_NAMES = ("train", "valid", "test")


@dataclasses.dataclass
class MultimodalDataset:
    """Samples of several modalities with their labels.

    Args:
        name: dataset name, e.g. `"mfeat"`.
        inputs: modality name -> array with one row per sample (see module doc).
            The dict order is the modality order.
        kinds: modality name -> one of `MODALITY_KINDS`.
        labels: int64 (N,) class ids for single-label data, or int/float (N, K)
            multi-hot for multi-label data.
        label_names: one name per class.
        multilabel: whether `labels` is multi-hot. Defaults to False.
        splits: optional fixed split, split name ("train", "valid", "test") ->
            int64 sample indices. Empty when the source has no published split.
        extras: source-specific side data, e.g. `{"vocabulary": [...],
            "embedding": np.ndarray}` for token sequences. Defaults to {}.
    """

    name: str
    inputs: Dict[str, np.ndarray]
    kinds: Dict[str, str]
    labels: np.ndarray
    label_names: Tuple[str, ...]
    multilabel: bool = False
    splits: Dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    extras: Dict[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.label_names = tuple(self.label_names)
        if not self.inputs:
            raise DataError(f"{self.name}: no modalities given")
        if set(self.inputs) != set(self.kinds):
            raise DataError(
                f"{self.name}: inputs {sorted(self.inputs)} and kinds "
                f"{sorted(self.kinds)} name different modalities")
        n = len(self.labels)
        for key, array in self.inputs.items():
            if self.kinds[key] not in MODALITY_KINDS:
                raise DataError(
                    f"{self.name}: modality '{key}' has unknown kind "
                    f"'{self.kinds[key]}'; expected one of {MODALITY_KINDS}")
            if len(array) != n:
                raise DataError(
                    f"{self.name}: modality '{key}' has {len(array)} samples "
                    f"but there are {n} labels")
        expected_label_ndim = 2 if self.multilabel else 1
        if self.labels.ndim != expected_label_ndim:
            raise DataError(
                f"{self.name}: labels have shape {self.labels.shape}; expected "
                f"{'(N, K) multi-hot' if self.multilabel else '(N,) class ids'}")
        if self.multilabel and self.labels.shape[1] != len(self.label_names):
            raise DataError(
                f"{self.name}: labels have {self.labels.shape[1]} columns but "
                f"{len(self.label_names)} label names")
        for split, index in self.splits.items():
            if split not in SPLIT_NAMES:
                raise DataError(f"{self.name}: unknown split '{split}'")
            if len(index) and (index.min() < 0 or index.max() >= n):
                raise DataError(
                    f"{self.name}: split '{split}' indexes outside [0, {n})")

    @property
    def num_samples(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.label_names)

    @property
    def modalities(self) -> Tuple[str, ...]:
        return tuple(self.inputs)

    def subset(self, index: np.ndarray, name: Optional[str] = None) -> "MultimodalDataset":
        """The samples at `index`, without split information."""
        index = np.asarray(index, dtype=np.int64)
        return MultimodalDataset(
            name=name or self.name,
            inputs={k: v[index] for k, v in self.inputs.items()},
            kinds=dict(self.kinds),
            labels=self.labels[index],
            label_names=self.label_names,
            multilabel=self.multilabel,
            extras=self.extras,
        )
