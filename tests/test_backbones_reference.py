"""The BM-NAS reference backbones wired for a dataset (VGG19 taps + Maxout MLP)."""

import numpy as np

from ssnas_tf.backbones import build_backbones, reference_backbones
from ssnas_tf.data.base import MultimodalDataset


def _dataset(text_kind):
    rng = np.random.default_rng(0)
    n = 4
    text = (rng.integers(0, 20, (n, 12)).astype("int32") if text_kind == "sequence"
            else rng.normal(size=(n, 300)).astype("float32"))
    return MultimodalDataset(
        "tiny", {"image": rng.integers(0, 255, (n, 64, 48, 3)).astype("uint8"), "text": text},
        {"image": "image", "text": text_kind}, rng.integers(0, 2, (n, 3)), ("a", "b", "c"),
        multilabel=True, extras={"embedding": rng.normal(size=(20, 300)).astype("float32")})


def test_reference_taps_have_the_reference_names_and_shapes():
    ds = _dataset("sequence")
    model = build_backbones(ds, np.arange(4), custom=reference_backbones(ds))
    out = model({"image": np.zeros((2, 64, 48, 3), "float32"), "text": ds.inputs["text"][:2]})
    shapes = {k: tuple(v.shape) for k, v in out.items()}
    # VGG19 at 64x48: relu4_1/relu4_4 at 1/8, relu5_3 at 1/16, pool5 at 1/32.
    assert shapes == {"Image_1": (2, 8, 6, 512), "Image_2": (2, 8, 6, 512),
                      "Image_3": (2, 4, 3, 512), "Image_4": (2, 2, 1, 512),
                      "Text_1": (2, 64), "Text_2": (2, 128)}


def test_sequence_text_uses_the_frozen_word2vec_mean():
    ds = _dataset("sequence")
    text_model = reference_backbones(ds)["text"]
    mean = text_model.get_layer("text_word_mean")
    assert not mean.trainable_weights  # pretrained embedding stays frozen
    ids = np.array([[2, 3, 0, 0]], "int32")
    got = np.asarray(mean(ids))
    np.testing.assert_allclose(got[0], ds.extras["embedding"][[2, 3]].mean(axis=0), rtol=1e-5)


def test_vector_text_goes_straight_into_the_maxout_mlp():
    ds = _dataset("vector")
    out = reference_backbones(ds)["text"](ds.inputs["text"][:2])
    assert {k: tuple(v.shape) for k, v in out.items()} == {"Text_1": (2, 64), "Text_2": (2, 128)}
