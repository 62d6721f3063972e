"""Tests for ssnas_tf.ssl.augment: per-kind augmentation, seeds, views, tf.data use."""

import numpy as np
import pytest
import tensorflow as tf

from ssnas_tf.ssl import augment
from ssnas_tf.ssl.augment import (AugmentConfig, ImageAugment, SequenceAugment,
                              SpectrogramAugment, TextAugment, VectorAugment)
from ssnas_tf.modalities import MASK_ID, PAD_ID

KINDS = {"digits": "image", "photo": "image", "features": "vector",
         "audio": "spectrogram", "tokens": "sequence", "plot": "text"}
WORDS = np.array(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta"])


def _text(rng, n, max_words=12):
    return np.array([" ".join(rng.choice(WORDS, size=rng.integers(0, max_words + 1)))
                     for _ in range(n)], dtype=object)


def _sequences(rng, n, length=20):
    ids = rng.integers(2, 100, size=(n, length)).astype(np.int32)
    lengths = rng.integers(0, length + 1, size=n)
    ids[np.arange(length)[None, :] >= lengths[:, None]] = PAD_ID
    return ids


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    n = 6
    return {
        "digits": rng.integers(0, 256, (n, 16, 15, 1)).astype(np.uint8),
        "photo": rng.random((n, 24, 24, 3)).astype(np.float32),
        "features": rng.normal(5.0, 3.0, (n, 8)).astype(np.float32),
        "audio": rng.integers(0, 256, (n, 20, 12, 1)).astype(np.uint8),
        "tokens": _sequences(rng, n),
        "plot": _text(rng, n),
    }


def _equal(a, b):
    return np.array_equal(np.asarray(a), np.asarray(b))


# ---------------------------------------------------------------------------
# Config.


def test_config_defaults_and_overrides():
    config = AugmentConfig(overrides={"digits": {"flip": False},
                                      "photo": ImageAugment(blur_p=0.0)})
    assert config.image.crop_scale == (0.08, 1.0)
    assert config.image.jitter_p == 0.8 and config.image.grayscale_p == 0.2
    assert config.vector.noise_std == 0.1 and config.vector.feature_dropout == 0.2
    assert config.sequence.mask_prob == 0.15 and config.text.mask_token == "[MASK]"
    assert config.settings_for("digits", "image").flip is False
    assert config.settings_for("digits", "image").blur_p == 0.5
    assert config.settings_for("photo", "image").blur_p == 0.0
    assert config.settings_for("other", "image") is config.image
    none = AugmentConfig.none()
    assert not any(getattr(none, kind).enabled for kind in
                   ("image", "vector", "spectrogram", "sequence", "text"))


def test_config_rejects_bad_values():
    with pytest.raises(ValueError):
        ImageAugment(crop_scale=(0.0, 1.0))
    with pytest.raises(ValueError):
        SequenceAugment(mask_prob=1.5)
    with pytest.raises(TypeError):
        AugmentConfig(overrides={"tokens": ImageAugment()}).settings_for("tokens", "sequence")
    with pytest.raises(ValueError):
        augment.augment_batch({"x": np.zeros((2, 3), np.float32)}, {}, AugmentConfig(), 0)


# ---------------------------------------------------------------------------
# Images.


@pytest.mark.parametrize("name", ["digits", "photo"])
def test_images_shape_range_change_and_seeds(batch, name):
    images = batch[name]
    expected = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    out = augment.augment_images(images, (1, 2)).numpy()
    assert out.shape == images.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, expected, atol=1e-3)
    assert _equal(out, augment.augment_images(images, (1, 2)))
    assert not np.allclose(out, augment.augment_images(images, (1, 3)).numpy())
    disabled = augment.augment_images(images, (1, 2), ImageAugment(enabled=False))
    np.testing.assert_allclose(disabled.numpy(), expected, atol=1e-6)


def test_images_per_sample_randomness_and_identity_settings(batch):
    same = np.repeat(batch["photo"][:1], 4, axis=0)
    out = augment.augment_images(same, (5, 6)).numpy()
    assert not np.allclose(out[0], out[1]) and not np.allclose(out[2], out[3])
    identity = ImageAugment(crop_scale=(1.0, 1.0), flip=False, jitter_p=0.0,
                            grayscale_p=0.0, blur_p=0.0)
    np.testing.assert_allclose(augment.augment_images(same, (5, 6), identity).numpy(),
                               same, atol=1e-6)
    gray = augment.augment_images(same, (5, 6), ImageAugment(grayscale_p=1.0)).numpy()
    np.testing.assert_allclose(gray[..., 0], gray[..., 2], atol=1e-6)
    rotated = augment.augment_images(same, (5, 6), ImageAugment(rotation=20.0))
    assert rotated.shape == same.shape


# ---------------------------------------------------------------------------
# Vectors.


def test_vectors_noise_dropout_and_seeds(batch):
    rng = np.random.default_rng(1)
    x = (rng.normal(size=(2000, 50)) * np.linspace(0.1, 100, 50)).astype(np.float32)
    dropped = augment.augment_vectors(x, 3, VectorAugment(noise_std=0.0)).numpy()
    changed = dropped != x
    assert abs(changed.mean() - 0.2) < 0.01
    np.testing.assert_allclose(dropped[changed],
                               np.broadcast_to(x.mean(0), x.shape)[changed], rtol=1e-4)
    noisy = augment.augment_vectors(x, 3, VectorAugment(feature_dropout=0.0)).numpy()
    relative = (noisy - x) / x.std(0)
    np.testing.assert_allclose(relative.std(0), 0.1, rtol=0.1)

    out = augment.augment_vectors(batch["features"], (7, 7))
    assert out.shape == batch["features"].shape and out.dtype == tf.float32
    assert not np.allclose(out.numpy(), batch["features"])
    assert _equal(out, augment.augment_vectors(batch["features"], (7, 7)))
    assert not _equal(out, augment.augment_vectors(batch["features"], (7, 8)))
    assert _equal(augment.augment_vectors(batch["features"], 1, VectorAugment(enabled=False)),
                  batch["features"])


# ---------------------------------------------------------------------------
# Spectrograms.


def test_spectrograms_masks_range_and_seeds(batch):
    spec = batch["audio"]
    out = augment.augment_spectrograms(spec, (2, 2)).numpy()
    assert out.shape == spec.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert not np.allclose(out, spec / 255.0)
    assert _equal(out, augment.augment_spectrograms(spec, (2, 2)))
    assert not _equal(out, augment.augment_spectrograms(spec, (2, 3)))
    np.testing.assert_allclose(
        augment.augment_spectrograms(spec, 0, SpectrogramAugment(enabled=False)).numpy(),
        spec / 255.0, atol=1e-6)

    # Time masks only, zero fill: masked rows are whole rows of zeros, at most
    # time_masks * floor(0.25 * T) of them.
    ones = np.ones((300, 20, 12, 1), np.float32)
    settings = SpectrogramAugment(time_masks=2, time_mask_max=0.25, freq_masks=0,
                                  fill="zero")
    masked = augment.augment_spectrograms(ones, 4, settings).numpy()[..., 0]
    rows = masked.min(axis=2) == 0
    assert np.array_equal(rows, masked.max(axis=2) == 0)
    assert rows.sum(axis=1).max() <= 2 * 5 and rows.any()


# ---------------------------------------------------------------------------
# Sequences.


def test_sequences_mask_rate_pads_and_seeds(batch):
    ids = _sequences(np.random.default_rng(2), 2000, length=50)
    out = augment.mask_sequences(ids, (9, 9)).numpy()
    assert out.dtype == np.int32 and out.shape == ids.shape
    pad = ids == PAD_ID
    assert np.all(out[pad] == PAD_ID)
    masked = out != ids
    assert np.all(out[masked] == MASK_ID)
    assert abs(masked[~pad].mean() - 0.15) < 0.01
    assert _equal(out, augment.mask_sequences(ids, (9, 9)))
    assert not _equal(out, augment.mask_sequences(ids, (9, 10)))
    assert _equal(augment.mask_sequences(ids, 0, SequenceAugment(enabled=False)), ids)
    all_masked = augment.mask_sequences(ids, 0, SequenceAugment(mask_prob=1.0)).numpy()
    assert np.all(all_masked[pad] == PAD_ID) and np.all(all_masked[~pad] == MASK_ID)


# ---------------------------------------------------------------------------
# Text.


def test_text_mask_rate_token_count_and_seeds():
    text = _text(np.random.default_rng(3), 1500, max_words=20)
    text[0] = ""
    out = augment.mask_text(text, (4, 4)).numpy()
    assert out.shape == text.shape and out[0] == b""
    before = [t.split() for t in text]
    after = [t.decode().split() for t in out]
    assert [len(t) for t in before] == [len(t) for t in after]
    tokens = [(b, a) for bs, as_ in zip(before, after) for b, a in zip(bs, as_)]
    assert all(a in (b, "[MASK]") for b, a in tokens)
    rate = np.mean([a == "[MASK]" for _, a in tokens])
    assert abs(rate - 0.15) < 0.015
    assert _equal(out, augment.mask_text(text, (4, 4)))
    assert not _equal(out, augment.mask_text(text, (4, 5)))
    assert _equal(augment.mask_text(text, 0, TextAugment(enabled=False)).numpy(),
                  text.astype(bytes))


# ---------------------------------------------------------------------------
# Batches, views and tf.data.


def test_augment_batch_and_two_views(batch):
    out = augment.augment_batch(batch, KINDS, AugmentConfig(), (1, 1))
    assert list(out) == list(batch)
    assert out["plot"].dtype == tf.string and out["tokens"].dtype == tf.int32
    disabled = augment.augment_batch(batch, KINDS, AugmentConfig.none(), (1, 1))
    np.testing.assert_allclose(disabled["digits"].numpy(), batch["digits"] / 255.0,
                               atol=1e-6)
    assert _equal(disabled["tokens"], batch["tokens"])
    assert _equal(disabled["plot"].numpy(), batch["plot"].astype(bytes))

    view1, view2 = augment.two_views(batch, KINDS, AugmentConfig(), (1, 1))
    for name in ("digits", "photo", "features", "audio"):
        assert not _equal(view1[name], view2[name]), name
    again1, _ = augment.two_views(batch, KINDS, AugmentConfig(), (1, 1))
    for name in batch:
        assert _equal(view1[name], again1[name]), name
    # A modality's augmentation does not depend on the other modalities.
    alone = augment.augment_batch({"photo": batch["photo"]}, KINDS, AugmentConfig(), (1, 1))
    assert _equal(alone["photo"], out["photo"])


def _pipeline(inputs, seed, config):
    fn = augment.make_view_pair_fn(KINDS, config, seed)
    ds = (tf.data.Dataset.from_tensor_slices(inputs).batch(4).enumerate()
          .map(fn, num_parallel_calls=2))
    return [(v1, v2) for v1, v2 in ds]


def test_view_pair_fn_in_tf_data_is_deterministic(batch):
    config = AugmentConfig(overrides={"digits": {"flip": False, "rotation": 10.0}})
    first = _pipeline(batch, 42, config)
    second = _pipeline(batch, 42, config)
    assert [v1["photo"].shape[0] for v1, _ in first] == [4, 2]
    for (a1, a2), (b1, b2) in zip(first, second):
        assert a1["plot"].dtype == tf.string and a1["audio"].dtype == tf.float32
        assert a1["tokens"].dtype == tf.int32 and a1["digits"].shape[1:] == (16, 15, 1)
        for name in batch:
            assert _equal(a1[name], b1[name]) and _equal(a2[name], b2[name]), name
        for name in ("digits", "photo", "features", "audio"):
            assert not _equal(a1[name], a2[name]), name
    # Batches get different seeds.
    assert not _equal(first[0][0]["features"][:2], first[1][0]["features"])
    # Graph (tf.data) and eager give the same views for the same batch seed.
    seed = tf.random.experimental.stateless_fold_in(tf.constant([42, 0], tf.int64),
                                                 tf.constant(1, tf.int64))
    eager1, _ = augment.two_views({k: v[4:] for k, v in batch.items()}, KINDS, config, seed)
    for name in batch:
        if name == "plot":
            assert _equal(eager1[name], first[1][0][name])
        else:
            np.testing.assert_allclose(eager1[name], first[1][0][name], atol=1e-5)
    # Another base seed gives other views.
    other, _ = augment.two_views({k: v[4:] for k, v in batch.items()}, KINDS, config,
                                 tf.random.experimental.stateless_fold_in(
                                     tf.constant([43, 0], tf.int64),
                                     tf.constant(1, tf.int64)))
    assert not _equal(other["photo"], first[1][0]["photo"])


def test_augmented_finetuning_and_serving_text_are_normalised_alike():
    """One normalisation, inside the model: an augmented view (nothing masked)
    and the raw string give the text backbone the same token ids."""
    from ssnas_tf.backbones import build_backbone, standardize_text

    raw = tf.constant(["Ｆｕｌｌ-width ＴＥＸＴ", "Ｆｕｌｌ　ＷＩＤＴＨ  ｔｅｘｔ"])
    view = augment.mask_text(raw, 0, TextAugment(mask_prob=1e-9))
    for text in (raw, view):
        tokens = tf.strings.split(standardize_text(text)).to_list()
        assert tokens == [[b"fullwidth", b"text"], [b"full", b"width", b"text"]]
    backbone = build_backbone("t", "text", np.array(["full width text", "fullwidth"]),
                              width=4)
    vectorize = backbone.get_layer("t_vectorize")
    ascii_ids = vectorize(tf.constant(["fullwidth text", "full width text"]))
    np.testing.assert_array_equal(vectorize(raw), ascii_ids)
    np.testing.assert_array_equal(vectorize(view), ascii_ids)
    assert int(tf.reduce_min(ascii_ids[:, :2])) > 1  # known words, not OOV
