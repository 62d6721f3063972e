"""Image augmentation: SimCLR's crop, flip, rotation, colour jitter, grayscale
and blur, per sample from stateless seeds."""

import math
from typing import Optional

import tensorflow as tf

from ssnas_tf.ssl.augment.config import ImageAugment
from ssnas_tf.ssl.augment.seeds import (SeedLike, _as_seed, _bernoulli, _fold, _select,
                                       _to_unit_float, _uniform)


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
