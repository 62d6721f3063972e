"""Per-modality data augmentation for the contrastive (SimCLR) steps.

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

import dataclasses
import math
import zlib
from typing import Callable, Dict, Mapping, Optional, Tuple, Union

import tensorflow as tf

from ssnas_tf.data.base import MASK_ID, MODALITY_KINDS, PAD_ID

SeedLike = Union[int, Tuple[int, int], tf.Tensor]

__all__ = [
    "AugmentConfig",
    "ImageAugment",
    "SequenceAugment",
    "SpectrogramAugment",
    "TextAugment",
    "VectorAugment",
    "augment_batch",
    "augment_images",
    "augment_spectrograms",
    "augment_vectors",
    "make_view_pair_fn",
    "mask_sequences",
    "mask_text",
    "two_views",
]


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


_KIND_SETTINGS = {
    "image": ImageAugment,
    "vector": VectorAugment,
    "spectrogram": SpectrogramAugment,
    "sequence": SequenceAugment,
    "text": TextAugment,
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
        overrides: modality name -> settings for that modality only, either a
            full settings object of the modality's kind (e.g.
            `ImageAugment(flip=False)`) or a mapping of field values applied on
            top of the kind's settings (e.g. `{"flip": False}`). Defaults to {}.

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
    overrides: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def __post_init__(self):
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
            `SequenceAugment` or `TextAugment`.
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


# ---------------------------------------------------------------------------
# Seeds.


def _as_seed(seed: SeedLike) -> tf.Tensor:
    """A shape-(2,) int64 seed from an int, a pair or a tensor."""
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer:
        raise TypeError(f"seed must be integer, got {seed.dtype}")
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        seed = tf.stack([seed, tf.zeros([], tf.int64)])
    seed.shape.assert_is_compatible_with([2])
    return tf.reshape(seed, [2])


def _fold(seed, data):
    # fold_in gives different seeds for int32 and int64 data of the same value,
    # so always fold int64 (tf.data's enumerate index is int64).
    return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int64))


def _name_key(name: str) -> int:
    # Stable across processes, unlike hash().
    return zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF


def _uniform(shape, seed, minval=0.0, maxval=1.0):
    return tf.random.stateless_uniform(shape, seed, minval=minval, maxval=maxval)


def _bernoulli(shape, seed, p):
    return _uniform(shape, seed) < p


def _select(apply, a, b):
    """Per-sample choice: `a` where the (N, 1, 1, 1) bool `apply` is True, else `b`."""
    # Exact for a 0/1 mask and about 3x faster on CPU than a broadcasting tf.where.
    weight = tf.cast(apply, a.dtype)
    return a * weight + b * (1.0 - weight)


def _to_unit_float(x):
    """uint8 0-255 -> float32 [0, 1]; float stays, as float32."""
    x = tf.convert_to_tensor(x)
    if x.dtype == tf.uint8:
        return tf.cast(x, tf.float32) / 255.0
    return tf.cast(x, tf.float32)


# ---------------------------------------------------------------------------
# Images.


def _random_resized_crop(images, seed, scale, ratio, flip=None):
    n = tf.shape(images)[0]
    area = _uniform([n], _fold(seed, 0), scale[0], scale[1])
    log_ratio = _uniform([n], _fold(seed, 1), math.log(ratio[0]), math.log(ratio[1]))
    aspect = tf.exp(log_ratio)
    # Fractions of the side: (h * H) * (w * W) = area * H * W and
    # (w * W) / (h * H) = aspect * W / H  =>  w = sqrt(area * aspect).
    # Clipping to the image replaces SimCLR's rejection sampling.
    crop_w = tf.minimum(tf.sqrt(area * aspect), 1.0)
    crop_h = tf.minimum(tf.sqrt(area / aspect), 1.0)
    offset = _uniform([n, 2], _fold(seed, 2))
    y1 = offset[:, 0] * (1.0 - crop_h)
    x1 = offset[:, 1] * (1.0 - crop_w)
    x2 = x1 + crop_w
    if flip is not None:
        # A box with x1 > x2 samples the mirrored crop: the flip comes for free.
        x1, x2 = tf.where(flip, x2, x1), tf.where(flip, x1, x2)
    boxes = tf.stack([y1, x1, y1 + crop_h, x2], axis=1)
    # crop_and_resize maps box edges to pixel centres 0 and size-1, so the
    # full box [0, 0, 1, 1] reproduces the image exactly.
    size = [d if d is not None else tf.shape(images)[i + 1]
            for i, d in enumerate(images.shape[1:3])]
    out = tf.image.crop_and_resize(images, boxes, tf.range(n), crop_size=size,
                                   method="bilinear")
    out.set_shape(images.shape)
    return out


def _random_flip(images, flip):
    return _select(flip[:, tf.newaxis, tf.newaxis, tf.newaxis],
                   tf.reverse(images, axis=[2]), images)


def _random_rotation(images, seed, degrees, fill_mode):
    shape = tf.shape(images)
    n = shape[0]
    h = tf.cast(shape[1], tf.float32)
    w = tf.cast(shape[2], tf.float32)
    angle = _uniform([n], seed, -degrees, degrees) * (math.pi / 180.0)
    cos, sin = tf.cos(angle), tf.sin(angle)
    # Output -> input pixel map of a rotation about the image centre.
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, zeros, zeros], axis=1)
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=shape[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode=fill_mode.upper())
    out.set_shape(images.shape)
    return out


def _color_jitter(images, seed, strength, channels):
    n = tf.shape(images)[0]
    s = 0.8 * strength
    brightness = _uniform([n, 1, 1, 1], _fold(seed, 0), 1.0 - s, 1.0 + s)
    contrast = _uniform([n, 1, 1, 1], _fold(seed, 1), 1.0 - s, 1.0 + s)
    # Brightness is multiplicative as in SimCLR v2's default implementation.
    out = tf.clip_by_value(images * tf.maximum(brightness, 0.0), 0.0, 1.0)
    mean = tf.reduce_mean(out, axis=[1, 2], keepdims=True)
    out = tf.clip_by_value((out - mean) * tf.maximum(contrast, 0.0) + mean, 0.0, 1.0)
    if channels == 3:
        saturation = _uniform([n, 1, 1], _fold(seed, 2), 1.0 - s, 1.0 + s)
        hue = _uniform([n, 1, 1], _fold(seed, 3), -0.2 * strength, 0.2 * strength)
        hsv = tf.image.rgb_to_hsv(out)
        h = tf.math.floormod(hsv[..., 0] + hue, 1.0)
        sat = tf.clip_by_value(hsv[..., 1] * tf.maximum(saturation, 0.0), 0.0, 1.0)
        out = tf.image.hsv_to_rgb(tf.stack([h, sat, hsv[..., 2]], axis=-1))
        out = tf.clip_by_value(out, 0.0, 1.0)
    return out


def _blur_kernel_size(height: int, width: int, fraction: float) -> int:
    side = min(height, width)
    radius = max(1, int(side * fraction) // 2)
    # Reflect padding needs the radius to be smaller than the side.
    radius = max(1, min(radius, side - 1))
    return 2 * radius + 1


def _gaussian_blur(images, seed, sigma_range, kernel_fraction):
    height, width, channels = images.shape[1:4]
    if height is None or width is None or channels is None:
        raise ValueError(
            f"Gaussian blur needs static image height, width and channels, "
            f"got shape {images.shape}")
    if min(height, width) < 2:
        return images
    size = _blur_kernel_size(height, width, kernel_fraction)
    radius = size // 2
    n = tf.shape(images)[0]
    sigma = _uniform([n, 1], seed, sigma_range[0], sigma_range[1])
    x = tf.range(-radius, radius + 1, dtype=tf.float32)[tf.newaxis, :]
    kernel = tf.exp(-(x ** 2) / (2.0 * sigma ** 2))
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)  # (n, size)
    # One depthwise channel per (sample, channel) gives every sample its own sigma.
    kernel = tf.reshape(tf.repeat(kernel, channels, axis=0), [-1, size])  # (n*c, size)
    kernel = tf.transpose(kernel)  # (size, n*c)
    stacked = tf.transpose(images, [1, 2, 0, 3])  # (h, w, n, c)
    stacked = tf.reshape(stacked, [1, height, width, -1])
    stacked = tf.pad(stacked, [[0, 0], [radius, radius], [radius, radius], [0, 0]],
                     mode="REFLECT")
    ones = [1, 1, 1, 1]
    stacked = tf.nn.depthwise_conv2d(
        stacked, kernel[:, tf.newaxis, :, tf.newaxis], ones, "VALID")
    stacked = tf.nn.depthwise_conv2d(
        stacked, kernel[tf.newaxis, :, :, tf.newaxis], ones, "VALID")
    stacked = tf.reshape(stacked, [height, width, n, channels])
    return tf.transpose(stacked, [2, 0, 1, 3])


def augment_images(images, seed: SeedLike, settings: Optional[ImageAugment] = None):
    """Augments a batch of images with SimCLR's recipe, each sample at random.

    Args:
        images: (N, H, W, C) uint8 in 0-255 or float in [0, 1]; H, W and C
            must be static (as after `Dataset.batch`).
        seed: shape-(2,) int seed (or a Python int).
        settings: an `ImageAugment`. Defaults to `ImageAugment()`.

    Returns:
        float32 (N, H, W, C) in [0, 1].

    Example:

    >>> images = tf.zeros([8, 32, 32, 3], tf.uint8)
    >>> augment_images(images, seed=(1, 2)).shape
    TensorShape([8, 32, 32, 3])
    """
    settings = settings or ImageAugment()
    images = _to_unit_float(images)
    if not settings.enabled:
        return images
    if images.shape.rank != 4:
        raise ValueError(f"images must be (N, H, W, C), got shape {images.shape}")
    seed = _as_seed(seed)
    channels = images.shape[-1]
    n = tf.shape(images)[0]
    out = images
    flip = _bernoulli([n], _fold(seed, 1), 0.5) if settings.flip else None
    if settings.crop_scale != (1.0, 1.0):
        out = _random_resized_crop(out, _fold(seed, 0), settings.crop_scale,
                                   settings.crop_ratio, flip)
    elif flip is not None:
        out = _random_flip(out, flip)
    if settings.rotation > 0:
        out = _random_rotation(out, _fold(seed, 2), settings.rotation,
                               settings.rotation_fill)
    if settings.jitter_p > 0 and settings.jitter_strength > 0:
        jittered = _color_jitter(out, _fold(seed, 3), settings.jitter_strength, channels)
        apply = _bernoulli([n, 1, 1, 1], _fold(seed, 4), settings.jitter_p)
        out = _select(apply, jittered, out)
    if settings.grayscale_p > 0 and channels == 3:
        gray = tf.tile(tf.image.rgb_to_grayscale(out), [1, 1, 1, 3])
        apply = _bernoulli([n, 1, 1, 1], _fold(seed, 5), settings.grayscale_p)
        out = _select(apply, gray, out)
    if settings.blur_p > 0:
        blurred = _gaussian_blur(out, _fold(seed, 6), settings.blur_sigma,
                                 settings.blur_kernel_fraction)
        apply = _bernoulli([n, 1, 1, 1], _fold(seed, 7), settings.blur_p)
        out = _select(apply, blurred, out)
    return tf.clip_by_value(out, 0.0, 1.0)


# ---------------------------------------------------------------------------
# Vectors, spectrograms, sequences, text.


def augment_vectors(vectors, seed: SeedLike, settings: Optional[VectorAugment] = None):
    """Adds per-feature scaled Gaussian noise and feature dropout to a batch.

    Args:
        vectors: float (N, D) raw features.
        seed: shape-(2,) int seed (or a Python int).
        settings: a `VectorAugment`. Defaults to `VectorAugment()`.

    Returns:
        float32 (N, D).
    """
    settings = settings or VectorAugment()
    vectors = tf.cast(vectors, tf.float32)
    if not settings.enabled:
        return vectors
    seed = _as_seed(seed)
    shape = tf.shape(vectors)
    mean, variance = tf.nn.moments(vectors, axes=[0], keepdims=True)
    out = vectors
    if settings.noise_std > 0:
        scale = settings.noise_std * (tf.sqrt(variance) if settings.relative_noise else 1.0)
        out = out + tf.random.stateless_normal(shape, _fold(seed, 0)) * scale
    if settings.feature_dropout > 0:
        drop = _bernoulli(shape, _fold(seed, 1), settings.feature_dropout)
        out = tf.where(drop, tf.broadcast_to(mean, shape), out)
    return out


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


_KIND_FUNCTIONS: Dict[str, Callable] = {
    "image": augment_images,
    "vector": augment_vectors,
    "spectrogram": augment_spectrograms,
    "sequence": mask_sequences,
    "text": mask_text,
}


# ---------------------------------------------------------------------------
# Batches and view pairs.


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

    The views use the seeds `fold_in(seed, 1)` and `fold_in(seed, 2)`.

    Args:
        features: modality name -> batch (first axis = samples).
        kinds: modality name -> kind.
        config: an `AugmentConfig`. Defaults to `AugmentConfig()`.
        seed: shape-(2,) int seed (or a Python int). Defaults to 0.

    Returns:
        `(view1, view2)`, two dicts as returned by `augment_batch`.
    """
    seed = _as_seed(seed)
    return (augment_batch(features, kinds, config, _fold(seed, 1)),
            augment_batch(features, kinds, config, _fold(seed, 2)))


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
