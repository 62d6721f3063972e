"""Tests for ssnas_tf.backbones: taps, VGG19 and Maxout MLP, small backbones, pretraining."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from ssnas_tf import backbones as bb
from ssnas_tf.ssl.augment import AugmentConfig, VectorAugment
from ssnas_tf.data.base import MASK_ID, PAD_ID, MultimodalDataset
from ssnas_tf.data.pipelines import to_model_inputs


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _weights(model):
    return [np.array(w) for w in model.weights]


# ---------------------------------------------------------------------------
# tap_model.


@pytest.fixture(name="small_model")
def small_model_fixture():
    inputs = keras.Input((6,), name="x")
    h = keras.layers.Dense(5, name="d1")(inputs)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.ReLU(name="r")(h)
    out = keras.layers.Dense(3, name="d2")(h)
    return keras.Model(inputs, out, name="small")


def test_tap_model_outputs_match_sub_models(small_model):
    tapped = bb.tap_model(small_model, ["d1", "r"], ["A_1", "A_2"], trainable=True)
    assert list(tapped.output) == ["A_1", "A_2"]
    assert tapped.name == "small_taps"
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    out = tapped(x)
    for feature, layer in (("A_1", "d1"), ("A_2", "r")):
        sub = keras.Model(small_model.input, small_model.get_layer(layer).output)
        np.testing.assert_allclose(_np(out[feature]), _np(sub(x)), rtol=1e-6)
    # d1 kernel and bias + BN gamma and beta; d2 feeds no tap.
    assert len(tapped.trainable_weights) == 4
    default = bb.tap_model(small_model, "r")
    assert list(default.output) == ["r"]


def test_tap_model_trainable_flag(small_model):
    frozen = bb.tap_model(small_model, ["d1", "r"], trainable=False)
    assert frozen.trainable_weights == []
    assert len(frozen.non_trainable_weights) == 6  # d1 (2) + BN (4)
    trainable = bb.tap_model(small_model, ["d1"], trainable=True)
    assert len(trainable.trainable_weights) == 2


def test_tap_model_errors(small_model):
    with pytest.raises(ValueError, match=r"no layer\(s\) \['nope'\].*available layers.*'d1'"):
        bb.tap_model(small_model, ["d1", "nope"])
    with pytest.raises(ValueError, match="2 layers"):
        bb.tap_model(small_model, ["d1", "r"], ["only_one"])
    with pytest.raises(ValueError, match="distinct"):
        bb.tap_model(small_model, ["d1", "r"], ["same", "same"])


# ---------------------------------------------------------------------------
# MM-IMDB reference backbones.


def test_vgg19_taps_are_the_reference_layers_on_preprocessed_input():
    model = bb.vgg19_taps(weights=None, input_shape=(64, 64, 3))
    assert list(model.output) == ["Image_1", "Image_2", "Image_3", "Image_4"]
    assert model.trainable_weights == []
    x = np.random.default_rng(1).random((2, 64, 64, 3)).astype("float32")
    expected_input = keras.applications.vgg19.preprocess_input(255.0 * x)
    np.testing.assert_allclose(_np(model.get_layer("vgg19_preprocess")(x)),
                               expected_input, rtol=1e-6, atol=1e-4)
    out = model(x)
    # Re-run the VGG layers by hand on preprocess_input(255 x).
    y, manual = expected_input, {}
    for layer in model.layers[2:]:
        y = layer(y)
        manual[layer.name] = _np(y)
    shapes = [(2, 8, 8, 512), (2, 8, 8, 512), (2, 4, 4, 512), (2, 2, 2, 512)]
    for i, (_, layer_name) in enumerate(bb.VGG19_TAP_LAYERS):
        feature = f"Image_{i + 1}"
        assert out[feature].shape == shapes[i]
        np.testing.assert_allclose(_np(out[feature]), manual[layer_name],
                                   rtol=1e-4, atol=1e-4)


def test_vgg19_taps_reference_shapes_and_local_weights(tmp_path):
    source = keras.applications.VGG19(include_top=False, weights=None,
                                      input_shape=(32, 32, 3))
    path = str(tmp_path / "vgg19_notop.weights.h5")
    source.save_weights(path)
    model = bb.vgg19_taps(weights=path, feature_prefix="Img")
    shapes = {k: tuple(v.shape) for k, v in model.output.items()}
    assert shapes == {"Img_1": (None, 32, 20, 512), "Img_2": (None, 32, 20, 512),
                      "Img_3": (None, 16, 10, 512), "Img_4": (None, 8, 5, 512)}
    assert model.input.name == "img"
    np.testing.assert_array_equal(
        np.array(model.get_layer("block5_conv3").kernel),
        np.array(source.get_layer("block5_conv3").kernel))
    with pytest.raises(ValueError, match="3"):
        bb.vgg19_taps(input_shape=(32, 32, 1))


def test_image_preprocess_config_round_trip():
    layer = bb.ImagePreprocess(mode="torch", name="pre")
    clone = bb.ImagePreprocess.from_config(layer.get_config())
    x = np.random.default_rng(2).random((1, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(_np(clone(x)), keras.applications.imagenet_utils
                               .preprocess_input(255.0 * x, mode="torch"), rtol=1e-5)


def test_maxout_matches_numpy_and_round_trips():
    rng = np.random.default_rng(3)
    layer = bb.Maxout(4, pieces=3)
    x = rng.normal(size=(5, 7)).astype("float32")
    layer.build(x.shape)
    kernel = rng.normal(size=(7, 12)).astype("float32")
    bias = rng.normal(size=(12,)).astype("float32")
    layer.set_weights([kernel, bias])
    expected = (x @ kernel + bias).reshape(5, 4, 3).max(axis=-1)
    np.testing.assert_allclose(_np(layer(x)), expected, rtol=1e-5, atol=1e-5)
    assert layer.compute_output_shape((None, 7)) == (None, 4)
    # Extra leading axes work too.
    np.testing.assert_allclose(_np(layer(x.reshape(5, 1, 7)))[:, 0], expected,
                               rtol=1e-5, atol=1e-5)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert (clone.units, clone.pieces) == (4, 3)


def test_maxout_mlp_taps():
    model = bb.maxout_mlp_taps()
    assert {k: tuple(v.shape) for k, v in model.output.items()} == {
        "Text_1": (None, 64), "Text_2": (None, 128)}
    assert [layer.name for layer in model.layers] == [
        "text", "maxout_1", "bn_1", "dropout_1", "maxout_2"]
    # Two Maxouts (kernel, bias) and the first BN (gamma, beta).
    assert len(model.trainable_weights) == 6
    out = model(np.ones((3, 300), "float32"))
    assert out["Text_1"].shape == (3, 64) and out["Text_2"].shape == (3, 128)


# ---------------------------------------------------------------------------
# Small backbones.


def _text(rng, n):
    words = np.array(["red", "green", "blue", "cat", "dog", "sat", "mat", "sun"])
    return np.array([" ".join(rng.choice(words, size=rng.integers(1, 7)))
                     for _ in range(n)], dtype=object)


def _sequences(rng, n, length=9, vocab=30):
    ids = rng.integers(2, vocab, size=(n, length)).astype(np.int32)
    ids[np.arange(length)[None, :] >= rng.integers(1, length + 1, size=n)[:, None]] = PAD_ID
    return ids


@pytest.fixture(name="tiny_dataset")
def tiny_dataset_fixture():
    rng = np.random.default_rng(4)
    n = 12
    return MultimodalDataset(
        name="tiny",
        inputs={
            "img": rng.integers(0, 256, (n, 8, 6, 3)).astype(np.uint8),
            "vec": rng.normal(3.0, 2.0, (n, 5)).astype(np.float32),
            "spec": rng.integers(0, 256, (n, 12, 10, 1)).astype(np.uint8),
            "seq": _sequences(rng, n),
            "txt": _text(rng, n),
        },
        kinds={"img": "image", "vec": "vector", "spec": "spectrogram",
               "seq": "sequence", "txt": "text"},
        labels=rng.integers(0, 2, n).astype(np.int64),
        label_names=("a", "b"),
        extras={"embedding": rng.normal(size=(30, 7)).astype(np.float32)},
    )


EXPECTED_TAPS = {
    "img_1": (8, 6, 8), "img_2": (4, 3, 16), "vec_1": (16,), "vec_2": (16,),
    "spec_1": (12, 10, 8), "spec_2": (6, 5, 16), "seq_1": (16,), "seq_2": (16,),
    "txt_1": (16,), "txt_2": (16,),
}


def test_build_backbone_each_kind(tiny_dataset):
    data = to_model_inputs(tiny_dataset.inputs, tiny_dataset.kinds)
    for modality, kind in tiny_dataset.kinds.items():
        model = bb.build_backbone(modality, kind, tiny_dataset.inputs[modality], width=16)
        assert model.name == f"{modality}_backbone"
        assert model.input.name == modality
        out = model(data[modality])
        assert list(out) == [f"{modality}_1", f"{modality}_2"]
        for feature, value in out.items():
            assert tuple(value.shape) == (12, *EXPECTED_TAPS[feature]), feature
    with pytest.raises(ValueError, match="unknown kind"):
        bb.build_backbone("x", "video", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        bb.build_backbone("x", "vector", np.zeros((2, 3, 4)))


def test_vector_backbone_normalises_with_training_statistics():
    train = np.random.default_rng(5).normal(100.0, 10.0, (50, 3)).astype("float32")
    model = bb.build_backbone("v", "vector", train)
    normalized = _np(model.get_layer("v_normalize")(train))
    np.testing.assert_allclose(normalized.mean(0), 0.0, atol=1e-3)
    np.testing.assert_allclose(normalized.std(0), 1.0, atol=1e-3)


def test_masked_token_mean_ignores_pad_and_mask():
    matrix = np.arange(20, dtype="float32").reshape(5, 4)
    layer = bb.MaskedTokenMean(5, 4, embedding_trainable=False)
    layer.build((None, None))
    layer.set_embedding(matrix)
    ids = np.array([[2, 3, MASK_ID, PAD_ID], [PAD_ID, PAD_ID, PAD_ID, PAD_ID],
                    [4, 9, PAD_ID, PAD_ID]])  # 9 is out of range -> OOV
    out = _np(layer(ids))
    np.testing.assert_allclose(out[0], matrix[[2, 3]].mean(0))
    np.testing.assert_allclose(out[1], 0.0)
    np.testing.assert_allclose(out[2], matrix[4])
    assert layer.trainable_weights == []


def test_frozen_masked_token_mean_stays_frozen_after_a_keras_round_trip(tmp_path):
    """A frozen backbone's embedding must not become trainable on reload (the
    reloaded classifier would train it, and its optimizer would not load)."""
    ids = keras.Input((None,), dtype="int32")
    backbone = keras.Model(ids, bb.MaskedTokenMean(5, 4, name="mean")(ids))
    backbone.trainable = False  # as a run freezes its backbones
    model = keras.Model(ids, keras.layers.Dense(2, name="head")(backbone(ids)))
    assert [w.path for w in model.trainable_weights] == ["head/kernel", "head/bias"]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [w.path for w in loaded.trainable_weights] == ["head/kernel", "head/bias"]


def test_sequence_backbone_uses_frozen_pretrained_embedding(tiny_dataset):
    matrix = tiny_dataset.extras["embedding"]
    model = bb.build_backbone("seq", "sequence", tiny_dataset.inputs["seq"], width=16,
                              embedding=matrix)
    layer = model.get_layer("seq_embedding_mean")
    np.testing.assert_array_equal(np.array(layer.embedding.embeddings), matrix)
    assert not any("embedding" in w.path for w in model.trainable_weights)


def _op_types(saved_model_dir):
    proto = saved_model_pb2.SavedModel()
    with open(f"{saved_model_dir}/saved_model.pb", "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    functions = {fn.signature.name for fn in graph.library.function}
    ops_ = {node.op for node in graph.node}
    for fn in graph.library.function:
        ops_ |= {node.op for node in fn.node_def}
    return ops_ - functions


def test_text_backbone_raw_strings_and_round_trips(tmp_path):
    train = np.array(["The cat sat on the mat.", "A dog, a sun!", "Blue green red",
                      "cat and dog"], dtype=object)
    model = bb.build_backbone("txt", "text", train, width=8)
    queries = np.array(["the cat [MASK] sat", "the cat sat", "unknown words only", ""])
    out = {k: _np(v) for k, v in model(queries).items()}
    # The augmentation's mask token is dropped like an unknown word.
    np.testing.assert_allclose(out["txt_2"][0], out["txt_2"][1], rtol=1e-6)
    model.save(tmp_path / "text.keras")
    loaded = keras.models.load_model(tmp_path / "text.keras")
    for key, value in loaded(queries).items():
        np.testing.assert_allclose(_np(value), out[key], rtol=1e-5, atol=1e-6)
    export_dir = str(tmp_path / "text_savedmodel")
    model.export(export_dir, verbose=False)
    reloaded = tf.saved_model.load(export_dir)
    served = reloaded.serve(tf.constant(queries))
    for key, value in served.items():
        np.testing.assert_allclose(value.numpy(), out[key], rtol=1e-5, atol=1e-6)
    non_core = sorted(op for op in _op_types(export_dir)
                      if not op.startswith("_") and not hasattr(tf.raw_ops, op))
    assert non_core == []


def test_build_backbones_all_kinds_and_custom(tiny_dataset):
    train_index = np.arange(8)
    custom_base = bb.build_backbone("other", "vector", tiny_dataset.inputs["vec"])
    custom = bb.tap_model(custom_base, ["other_1"], ["Vec_A"], trainable=False)
    model = bb.build_backbones(tiny_dataset, train_index, width=16,
                               custom={"vec": custom})
    assert list(model.input) == ["img", "vec", "spec", "seq", "txt"]
    assert list(model.output) == ["img_1", "img_2", "Vec_A", "spec_1", "spec_2",
                                  "seq_1", "seq_2", "txt_1", "txt_2"]
    out = model(to_model_inputs(tiny_dataset.inputs, tiny_dataset.kinds))
    for feature, value in out.items():
        expected = (64,) if feature == "Vec_A" else EXPECTED_TAPS[feature]
        assert tuple(value.shape) == (12, *expected), feature
    parts = bb.backbones_by_modality(model)
    assert list(parts) == list(model.input)
    assert parts["vec"].trainable_weights == []
    # The dataset's embedding went to the sequence backbone, frozen.
    seq_layer = parts["seq"].get_layer("seq_embedding_mean")
    np.testing.assert_array_equal(np.array(seq_layer.embedding.embeddings),
                                  tiny_dataset.extras["embedding"])
    sub = bb.build_backbones(tiny_dataset, train_index, width=16, modalities=["vec"])
    assert list(sub.output) == ["vec_1", "vec_2"]
    clash = bb.tap_model(custom_base, ["other_1"], ["img_1"])
    with pytest.raises(ValueError, match="img_1"):
        bb.build_backbones(tiny_dataset, train_index, custom={"vec": clash},
                           modalities=["img", "vec"])


def test_pretrain_reduces_loss_and_touches_only_its_backbone():
    rng = np.random.default_rng(6)
    n = 96
    centres = rng.normal(0.0, 3.0, (12, 16))
    vectors = centres[rng.integers(0, 12, n)] + rng.normal(0.0, 0.5, (n, 16))
    dataset = MultimodalDataset(
        name="pretrain",
        inputs={"vec": vectors.astype(np.float32),
                "img": rng.integers(0, 256, (n, 6, 6, 1)).astype(np.uint8),
                "frozen": rng.normal(size=(n, 4)).astype(np.float32)},
        kinds={"vec": "vector", "img": "image", "frozen": "vector"},
        labels=np.zeros(n, np.int64), label_names=("only",))
    train_index = np.arange(80)
    frozen = bb.tap_model(bb.build_backbone("f", "vector", dataset.inputs["frozen"], 8),
                          ["f_1"], ["frozen_1"], trainable=False)
    model = bb.build_backbones(dataset, train_index, width=32, custom={"frozen": frozen})
    parts = bb.backbones_by_modality(model)
    before = {m: _weights(parts[m]) for m in parts}
    config = AugmentConfig(vector=VectorAugment(noise_std=0.3, feature_dropout=0.2))
    history = bb.pretrain_backbones(model, dataset, train_index, config, epochs=8,
                                    batch_size=40, seed=1, verbose=0,
                                    learning_rate=3e-3, return_history=True,
                                    modalities=["vec", "frozen"])
    assert history["frozen"] is None
    losses = history["vec"]
    assert len(losses) == 8 and all(np.isfinite(losses))
    assert np.mean(losses[-2:]) < losses[0] - 0.2, losses
    trained = [w.path for a, w in zip(before["vec"], parts["vec"].weights)
               if not np.array_equal(a, np.array(w))]
    # Dense kernels, BN gamma/beta and moving statistics; not the normaliser.
    expected = [w.path for w in parts["vec"].weights if "normalize" not in w.path]
    assert trained == expected
    for other in ("img", "frozen"):
        for a, b in zip(before[other], _weights(parts[other])):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="cannot pretrain"):
        bb.pretrain_backbones(model, dataset, train_index, modalities=["nope"])
    with pytest.raises(ValueError, match="cannot pretrain"):  # dict of backbones
        bb.pretrain_backbones({"vec": parts["vec"]}, dataset, train_index,
                              modalities=["img"])
