"""Augmentation settings: one frozen dataclass per modality kind, and
`AugmentConfig` holding them with per-modality overrides."""

import dataclasses
import math
from typing import Mapping, Tuple

from ssnas_tf.modalities import MASK_ID, MODALITY_KINDS, PAD_ID


def _check_probability(owner, name, value):
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{owner}.{name} must be in [0, 1], got {value}")


def _check_range(owner, name, value, low, high):
    lo, hi = value
    if not (low <= lo <= hi <= high):
        raise ValueError(
            f"{owner}.{name} must be a (min, max) pair with "
            f"{low} <= min <= max <= {high}, got {value}")


# ---------------------------------------------------------------------------
# Settings.


@dataclasses.dataclass(frozen=True)
class ImageAugment:
    """Image augmentation settings (SimCLR's recipe by default).

    Applied in SimCLR's order: random resized crop, horizontal flip, rotation,
    colour jitter, grayscale, Gaussian blur, clip to [0, 1]. Differences from
    SimCLR's code: the jitter's four adjustments run in a fixed order
    (brightness, contrast, saturation, hue) rather than a random one; crop
    sides that would exceed the image are clipped instead of re-sampled; blur
    pads by reflection instead of with zeros.

    Args:
        enabled: whether to augment at all; when False images are only
            converted to float32 in [0, 1]. Defaults to True.
        crop_scale: (min, max) area of the random crop as a fraction of the
            image area; the crop is resized back to the input size. `(1, 1)`
            disables cropping. Defaults to `(0.08, 1.0)`.
        crop_ratio: (min, max) aspect ratio (width / height, relative to the
            image's own aspect) of the crop, sampled log-uniformly.
            Defaults to `(3/4, 4/3)`.
        flip: random horizontal flip with p 0.5; set False for digits or
            images of text. Defaults to True.
        rotation: maximum absolute rotation in degrees (uniform in
            [-rotation, rotation]); 0 disables it. Defaults to 0.
        rotation_fill: how pixels rotated in from outside are filled, one of
            "reflect", "constant" (zeros, good for digits on black), "nearest",
            "wrap". Defaults to "reflect".
        jitter_strength: colour jitter strength s: brightness, contrast and
            saturation factors in [1 - 0.8 s, 1 + 0.8 s], hue shift in
            [-0.2 s, 0.2 s]. Saturation and hue only for 3-channel images.
            Defaults to 0.5.
        jitter_p: probability of applying colour jitter. Defaults to 0.8.
        grayscale_p: probability of converting to grayscale (3-channel images
            only; the output keeps 3 channels). Defaults to 0.2.
        blur_p: probability of Gaussian blur. Defaults to 0.5.
        blur_sigma: (min, max) of the blur's standard deviation in pixels.
            Defaults to `(0.1, 2.0)`.
        blur_kernel_fraction: blur kernel size as a fraction of the shorter
            image side, rounded to an odd size of at least 3. Defaults to 0.1.
    """

    enabled: bool = True
    crop_scale: Tuple[float, float] = (0.08, 1.0)
    crop_ratio: Tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0)
    flip: bool = True
    rotation: float = 0.0
    rotation_fill: str = "reflect"
    jitter_strength: float = 0.5
    jitter_p: float = 0.8
    grayscale_p: float = 0.2
    blur_p: float = 0.5
    blur_sigma: Tuple[float, float] = (0.1, 2.0)
    blur_kernel_fraction: float = 0.1

    def __post_init__(self):
        name = type(self).__name__
        for field in ("crop_scale", "crop_ratio", "blur_sigma"):
            object.__setattr__(self, field, tuple(float(v) for v in getattr(self, field)))
        lo, hi = self.crop_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"{name}.crop_scale must satisfy 0 < min <= max <= 1, "
                             f"got {self.crop_scale}")
        _check_range(name, "crop_ratio", self.crop_ratio, 1e-6, math.inf)
        _check_range(name, "blur_sigma", self.blur_sigma, 1e-6, math.inf)
        for field in ("jitter_p", "grayscale_p", "blur_p"):
            _check_probability(name, field, getattr(self, field))
        if self.rotation < 0 or self.jitter_strength < 0:
            raise ValueError(f"{name}: rotation and jitter_strength must be >= 0")
        if self.rotation_fill not in ("reflect", "constant", "nearest", "wrap"):
            raise ValueError(f"{name}.rotation_fill must be one of reflect, constant, "
                             f"nearest, wrap; got '{self.rotation_fill}'")
        if self.blur_kernel_fraction <= 0:
            raise ValueError(f"{name}.blur_kernel_fraction must be > 0")


@dataclasses.dataclass(frozen=True)
class VectorAugment:
    """Feature-vector augmentation settings.

    Noise is relative to each feature's scale because vectors arrive raw
    (backbones normalise them): with `relative_noise=True` the noise added to
    feature d is N(0, (noise_std * std_d)^2), where std_d is the feature's
    standard deviation over the batch; this equals a fixed noise std of
    `noise_std` after per-feature standardisation. Dropped features are set to
    their batch mean (i.e. to 0 after standardisation), without 1/(1-p)
    rescaling.

    Args:
        enabled: whether to augment; when False vectors are only cast to
            float32. Defaults to True.
        noise_std: noise standard deviation, in units of the feature's batch
            std (or absolute, see `relative_noise`). Defaults to 0.1.
        relative_noise: scale the noise by each feature's batch std; False
            adds noise of fixed std `noise_std` (for already standardised
            vectors). Defaults to True.
        feature_dropout: probability, per sample and feature, of replacing the
            value by the feature's batch mean. Defaults to 0.2.
    """

    enabled: bool = True
    noise_std: float = 0.1
    relative_noise: bool = True
    feature_dropout: float = 0.2

    def __post_init__(self):
        if self.noise_std < 0:
            raise ValueError(f"VectorAugment.noise_std must be >= 0, got {self.noise_std}")
        _check_probability("VectorAugment", "feature_dropout", self.feature_dropout)


@dataclasses.dataclass(frozen=True)
class SpectrogramAugment:
    """SpecAugment-style masking settings for (N, T, F, 1) spectrograms.

    Each mask covers a band of width uniform in [0, max width] at a uniform
    position; widths are fractions of the axis length so one setting fits
    spectrograms of any size.

    Args:
        enabled: whether to augment; when False spectrograms are only
            converted to float32 in [0, 1]. Defaults to True.
        time_masks: number of time masks per sample. Defaults to 2.
        time_mask_max: maximum width of a time mask, fraction of T.
            Defaults to 0.15.
        freq_masks: number of frequency masks per sample. Defaults to 2.
        freq_mask_max: maximum width of a frequency mask, fraction of F.
            Defaults to 0.15.
        fill: value of masked bins, "mean" (the sample's mean, SpecAugment's
            choice for normalised input) or "zero". Defaults to "mean".
    """

    enabled: bool = True
    time_masks: int = 2
    time_mask_max: float = 0.15
    freq_masks: int = 2
    freq_mask_max: float = 0.15
    fill: str = "mean"

    def __post_init__(self):
        name = type(self).__name__
        if self.time_masks < 0 or self.freq_masks < 0:
            raise ValueError(f"{name}: mask counts must be >= 0")
        _check_probability(name, "time_mask_max", self.time_mask_max)
        _check_probability(name, "freq_mask_max", self.freq_mask_max)
        if self.fill not in ("mean", "zero"):
            raise ValueError(f"{name}.fill must be 'mean' or 'zero', got '{self.fill}'")


@dataclasses.dataclass(frozen=True)
class SequenceAugment:
    """Token-id masking settings for (N, T) int sequences.

    Args:
        enabled: whether to augment. Defaults to True.
        mask_prob: probability, per non-pad token, of replacing it by
            `mask_id`. Defaults to 0.15.
        mask_id: id written into masked positions. Defaults to `MASK_ID` (1).
        pad_id: id of padding, never masked. Defaults to `PAD_ID` (0).
    """

    enabled: bool = True
    mask_prob: float = 0.15
    mask_id: int = MASK_ID
    pad_id: int = PAD_ID

    def __post_init__(self):
        _check_probability("SequenceAugment", "mask_prob", self.mask_prob)


@dataclasses.dataclass(frozen=True)
class TextAugment:
    """Raw-text masking settings.

    Args:
        enabled: whether to augment. Defaults to True.
        mask_prob: probability, per whitespace token, of replacing it by
            `mask_token`. Defaults to 0.15.
        mask_token: replacement string. Defaults to "[MASK]".
    """

    enabled: bool = True
    mask_prob: float = 0.15
    mask_token: str = "[MASK]"

    def __post_init__(self):
        _check_probability("TextAugment", "mask_prob", self.mask_prob)


@dataclasses.dataclass(frozen=True)
class TabularAugment:
    """Table-row corruption settings (SCARF) for (N, C) `tabular` arrays.

    Each cell is, with probability `corruption`, replaced by the same
    column's cell of another row of the batch (one random permutation of
    the rows): a draw from the column's empirical distribution, which works
    for numbers, missing values and hashed categories alike.

    Args:
        enabled: whether to augment. Defaults to True.
        corruption: probability, per cell, of the replacement. Defaults to 0.3.

    Reference: Bahri et al., "SCARF: Self-Supervised Contrastive Learning
    using Random Feature Corruption", ICLR 2022.
    """

    enabled: bool = True
    corruption: float = 0.3

    def __post_init__(self):
        _check_probability("TabularAugment", "corruption", self.corruption)


@dataclasses.dataclass(frozen=True)
class AudioAugment:
    """Waveform augmentation settings for (N, L) `audio` arrays.

    Applied in order: a random gain, uniform in [-gain_db, gain_db] dB;
    Gaussian noise of std `noise_std`; one time mask (zeros) of width
    uniform in [0, time_mask_max * L] at a uniform position; clip to [-1, 1].

    Args:
        enabled: whether to augment. Defaults to True.
        gain_db: maximum absolute gain in dB. Defaults to 6.0.
        noise_std: noise standard deviation. Defaults to 0.005.
        time_mask_max: maximum mask width, fraction of L. Defaults to 0.15.
    """

    enabled: bool = True
    gain_db: float = 6.0
    noise_std: float = 0.005
    time_mask_max: float = 0.15

    def __post_init__(self):
        if self.gain_db < 0 or self.noise_std < 0:
            raise ValueError("AudioAugment: gain_db and noise_std must be >= 0")
        _check_probability("AudioAugment", "time_mask_max", self.time_mask_max)


_KIND_SETTINGS = {
    "image": ImageAugment,
    "vector": VectorAugment,
    "spectrogram": SpectrogramAugment,
    "sequence": SequenceAugment,
    "text": TextAugment,
    "tabular": TabularAugment,
    "audio": AudioAugment,
}


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Augmentation settings for every modality kind, with per-modality overrides.

    Args:
        image: settings for all `image` modalities. Defaults to `ImageAugment()`.
        vector: settings for all `vector` modalities. Defaults to
            `VectorAugment()`.
        spectrogram: settings for all `spectrogram` modalities. Defaults to
            `SpectrogramAugment()`.
        sequence: settings for all `sequence` modalities. Defaults to
            `SequenceAugment()`.
        text: settings for all `text` modalities. Defaults to `TextAugment()`.
        tabular: settings for all `tabular` modalities. Defaults to
            `TabularAugment()`.
        audio: settings for all `audio` modalities. Defaults to
            `AudioAugment()`.
        overrides: modality name -> settings for that modality only, either a
            full settings object of the modality's kind (e.g.
            `ImageAugment(flip=False)`) or a mapping of field values applied on
            top of the kind's settings (e.g. `{"flip": False}`). Defaults to {}.
        cross_modal: share of samples whose two views are split across
            modalities: view 1 keeps a random subset, view 2 the rest
            (`ssnas_tf.ssl.augment.cross_modal`). Defaults to 0 (SimCLR's
            views, every modality in both).

    Example:

    >>> config = AugmentConfig(
    ...     image=ImageAugment(jitter_strength=1.0),
    ...     overrides={"digits": {"flip": False, "rotation": 10.0}})
    >>> config.settings_for("digits", "image").flip
    False
    >>> AugmentConfig.none().image.enabled
    False
    """

    image: ImageAugment = dataclasses.field(default_factory=ImageAugment)
    vector: VectorAugment = dataclasses.field(default_factory=VectorAugment)
    spectrogram: SpectrogramAugment = dataclasses.field(default_factory=SpectrogramAugment)
    sequence: SequenceAugment = dataclasses.field(default_factory=SequenceAugment)
    text: TextAugment = dataclasses.field(default_factory=TextAugment)
    tabular: TabularAugment = dataclasses.field(default_factory=TabularAugment)
    audio: AudioAugment = dataclasses.field(default_factory=AudioAugment)
    overrides: Mapping[str, object] = dataclasses.field(default_factory=dict)
    cross_modal: float = 0.0

    def __post_init__(self):
        _check_probability("AugmentConfig", "cross_modal", self.cross_modal)
        for kind, cls in _KIND_SETTINGS.items():
            if not isinstance(getattr(self, kind), cls):
                raise TypeError(f"AugmentConfig.{kind} must be a {cls.__name__}, "
                                f"got {type(getattr(self, kind)).__name__}")
        for name, value in self.overrides.items():
            if not isinstance(value, (Mapping, *_KIND_SETTINGS.values())):
                raise TypeError(
                    f"AugmentConfig.overrides['{name}'] must be a settings object "
                    f"or a mapping of field values, got {type(value).__name__}")
        object.__setattr__(self, "overrides", dict(self.overrides))

    @classmethod
    def none(cls) -> "AugmentConfig":
        """A config that disables every augmentation (only dtype conversion)."""
        return cls(**{kind: settings(enabled=False)
                      for kind, settings in _KIND_SETTINGS.items()})

    def settings_for(self, name: str, kind: str):
        """The settings object used for modality `name` of kind `kind`.

        Args:
            name: modality name.
            kind: one of `MODALITY_KINDS`.

        Returns:
            An `ImageAugment`, `VectorAugment`, `SpectrogramAugment`,
            `SequenceAugment`, `TextAugment`, `TabularAugment` or `AudioAugment`.
        """
        if kind not in _KIND_SETTINGS:
            raise ValueError(f"modality '{name}' has unknown kind '{kind}'; "
                             f"expected one of {MODALITY_KINDS}")
        settings = getattr(self, kind)
        override = self.overrides.get(name)
        if override is None:
            return settings
        if isinstance(override, Mapping):
            return dataclasses.replace(settings, **override)
        if not isinstance(override, _KIND_SETTINGS[kind]):
            raise TypeError(
                f"AugmentConfig.overrides['{name}'] is a {type(override).__name__} "
                f"but modality '{name}' is of kind '{kind}'; expected a "
                f"{_KIND_SETTINGS[kind].__name__}")
        return override
