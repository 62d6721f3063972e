"""Per-modality backbones: models from raw modality input to named feature taps.

The fusion network (`SearchNetwork`, `DerivedNetwork`) reads a dict feature
name -> tensor of shape (N, D), (N, T, D) or (N, H, W, D). A backbone turns one
modality's raw input into such "taps", intermediate features of a per-modality
network (BM-NAS taps four VGG19 layers as Image_1..Image_4 and the two hidden
layers of a Maxout MLP as Text_1, Text_2).

What is here:

- `tap_model`: any built functional Keras model + layer names -> a model whose
  output is the dict of those layers' outputs, frozen or trainable.
- The MM-IMDB reference backbones: `vgg19_taps` (ImageNet VGG19, taps relu4_1,
  relu4_4, relu5_3, pool5) and `maxout_mlp_taps` (the Maxout MLP on the 300-d
  mean word2vec vector, taps = the two Maxout outputs).
- Small backbones for every modality kind (`build_backbone`) and
  `build_backbones`, which joins one backbone per modality of a
  `MultimodalDataset` into ONE model: dict input (modality name -> raw tensor)
  -> dict output (all taps, in modality order). User models plug in per
  modality through `custom=`.
- `pretrain_backbones`: unimodal SimCLR pretraining of each backbone on
  unlabeled training samples.

Inputs follow `ssnas_tf.data.base`, except that images and spectrograms enter
the models as float32 in [0, 1] (what `ssnas_tf.augment` returns; use
`ssnas_tf.input_pipeline.to_model_inputs` to convert uint8 arrays; the TF
Serving export does it for uint8 inputs). Sequences are int token ids (0 = padding, 1 = mask/OOV) and
text is raw strings, vectorised inside the model with core TensorFlow ops only,
so exported SavedModels load without tensorflow-text.

Reference: Yin, Huang & Zhang, "BM-NAS", AAAI 2022 (feature taps);
Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR-W 2017
(MM-IMDB, Maxout MLP); Simonyan & Zisserman, "Very Deep Convolutional Networks",
ICLR 2015 (VGG19); Goodfellow et al., "Maxout Networks", ICML 2013;
Chen et al., "SimCLR", ICML 2020.
"""

import re
from typing import Dict, Mapping, Optional, Sequence, Union

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from ssnas_tf import augment as augment_lib
from ssnas_tf.data.base import MASK_ID, MODALITY_KINDS, PAD_ID
from ssnas_tf.heads import ProjectionHead
from ssnas_tf.contrastive_model import ContrastiveModel

__all__ = [
    "ImagePreprocess",
    "MaskedTokenMean",
    "Maxout",
    "VGG19_TAP_LAYERS",
    "backbones_by_modality",
    "build_backbone",
    "build_backbones",
    "maxout_mlp_taps",
    "pretrain_backbones",
    "standardize_text",
    "tap_model",
    "vgg19_taps",
]

# BM-NAS's VGG19 taps in torchvision naming -> Keras layer names.
VGG19_TAP_LAYERS = (
    ("relu4_1", "block4_conv1"),
    ("relu4_4", "block4_conv4"),
    ("relu5_3", "block5_conv3"),
    ("pool5", "block5_pool"),
)

# PyTorch's BatchNorm defaults (momentum 0.1 there = 0.9 here): Keras's 0.99
# leaves the moving statistics far from the batch statistics after the few
# hundred steps of a small pretraining run.
_BN = dict(momentum=0.9, epsilon=1e-5)


# ---------------------------------------------------------------------------
# Tapping a model.


def tap_model(model: keras.Model, layer_names: Union[str, Sequence[str]],
              feature_names: Optional[Sequence[str]] = None, trainable: bool = False,
              name: Optional[str] = None) -> keras.Model:
    """A model with `model`'s inputs whose output is a dict of layer outputs.

    The new model shares its layers with `model` (nothing is copied) and holds
    only the part of the graph the taps need. `trainable` is set on those
    shared layers (all of them, including any that `model` had frozen), so
    it applies to `model` as well. A frozen model's
    BatchNormalization layers run in inference mode (Keras 3 semantics).

    Only top-level layers can be tapped (`model.layers`). To tap inside a
    nested model, build it on your tensor instead of nesting it, e.g.
    `keras.applications.VGG19(input_tensor=x, ...)` as `vgg19_taps` does.

    Args:
        model: a built functional (or Sequential) Keras model.
        layer_names: names of the layers to tap, in output order; each layer
            must have been called exactly once in `model`.
        feature_names: the output dict's keys, one per layer, e.g.
            `["Image_1", "Image_2"]`. Defaults to None, meaning the layer
            names.
        trainable: whether the tapped layers stay trainable. Defaults to False
            (frozen, as pretrained backbones are in BM-NAS).
        name: the new model's name. Defaults to None, meaning
            `f"{model.name}_taps"`.

    Returns:
        A `keras.Model` with `model.input` as input and the dict
        feature name -> layer output as output.

    Raises:
        ValueError: unknown layer name (the message lists the available
            ones), a layer with several call sites, a model without symbolic
            inputs, or `feature_names` of the wrong length or with duplicates.

    Example:

    >>> base = keras.applications.MobileNetV2(include_top=False, weights=None,
    ...                                       input_shape=(96, 96, 3))
    >>> taps = tap_model(base, ["block_6_expand_relu", "out_relu"],
    ...                  feature_names=["Image_1", "Image_2"])
    >>> {k: v.shape for k, v in taps.output.items()}
    {'Image_1': (None, 12, 12, 192), 'Image_2': (None, 3, 3, 1280)}
    """
    layer_names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    if not layer_names:
        raise ValueError("tap_model needs at least one layer name")
    feature_names = list(layer_names if feature_names is None else feature_names)
    if len(feature_names) != len(layer_names):
        raise ValueError(f"got {len(feature_names)} feature names for "
                         f"{len(layer_names)} layers")
    if len(set(feature_names)) != len(feature_names):
        raise ValueError(f"feature names must be distinct, got {feature_names}")
    try:
        inputs = model.input
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"tap_model needs a built functional model with symbolic inputs; "
            f"'{model.name}' has none ({error}). Build it from keras.Input.") from None
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        # keras.applications built on input_tensor keep a one-element list.
        inputs = inputs[0]
    available = [layer.name for layer in model.layers]
    missing = [n for n in layer_names if n not in available]
    if missing:
        raise ValueError(f"model '{model.name}' has no layer(s) {missing}; "
                         f"available layers: {available}")
    outputs = {}
    for layer_name, feature in zip(layer_names, feature_names):
        try:
            outputs[feature] = model.get_layer(layer_name).output
        except (AttributeError, ValueError) as error:
            raise ValueError(
                f"layer '{layer_name}' of model '{model.name}' has no single "
                f"output to tap ({error})") from None
    tapped = keras.Model(inputs=inputs, outputs=outputs,
                         name=name or f"{model.name}_taps")
    # Per layer: Keras skips the recursive setter when the model's own flag
    # already has the value, which would leave layers frozen by an earlier
    # tap of the same model frozen.
    for layer in tapped.layers:
        layer.trainable = trainable
    tapped.trainable = trainable
    return tapped


# ---------------------------------------------------------------------------
# MM-IMDB reference backbones.


@keras.saving.register_keras_serializable(package="ssnas_tf")
class ImagePreprocess(layers.Layer):
    """Converts [0, 1] RGB images to a keras.applications model's input.

    Computes `keras.applications.imagenet_utils.preprocess_input(x * scale,
    mode=mode)`. With the defaults (`scale=255`, `mode="caffe"`) this is
    `keras.applications.vgg19.preprocess_input(255 * x)`: RGB -> BGR and the
    ImageNet Caffe mean (103.939, 116.779, 123.68) subtracted, no scaling, as
    the Keras VGG weights expect.

    Args:
        mode: "caffe" (VGG, ResNet50), "tf" (scale to [-1, 1]) or "torch"
            (ImageNet mean/std). Defaults to "caffe".
        scale: factor that brings the input to 0-255. Defaults to 255.0.

    Example:

    >>> layer = ImagePreprocess()
    >>> layer(np.ones((1, 2, 2, 3), "float32"))[0, 0, 0]  # BGR minus mean
    [151.061, 138.221, 131.32]
    """

    def __init__(self, mode="caffe", scale=255.0, **kwargs):
        super().__init__(**kwargs)
        if mode not in ("caffe", "tf", "torch"):
            raise ValueError(f"mode must be 'caffe', 'tf' or 'torch', got '{mode}'")
        self.mode = mode
        self.scale = float(scale)

    def call(self, inputs):
        x = ops.cast(inputs, "float32") * self.scale
        return keras.applications.imagenet_utils.preprocess_input(
            x, data_format="channels_last", mode=self.mode)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(mode=self.mode, scale=self.scale)
        return config


def vgg19_taps(weights: Optional[str] = None, input_shape=(256, 160, 3),
               feature_prefix: str = "Image", trainable: bool = False,
               name: str = "vgg19_taps") -> keras.Model:
    """VGG19 with BM-NAS's four MM-IMDB taps, taking [0, 1] RGB images.

    Taps (torchvision name = Keras layer, 512 channels each; spatial size at
    256 x 160): relu4_1 = `block4_conv1` (32 x 20), relu4_4 = `block4_conv4`
    (32 x 20), relu5_3 = `block5_conv3` (16 x 10), pool5 = `block5_pool`
    (8 x 5), as features `{prefix}_1` .. `{prefix}_4`. Keras's conv layers
    include their ReLU, so `blockK_convJ` is reluK_J.

    The input is float32 RGB in [0, 1] (the `ssnas_tf.data` / `augment`
    convention); an `ImagePreprocess` layer inside the model scales it to 0-255
    and applies `keras.applications.vgg19.preprocess_input` (RGB -> BGR, Caffe
    mean), the conversion the Keras ImageNet weights were trained with. (The
    BM-NAS reference fed BGR Caffe-mean data to a torchvision VGG that expects
    RGB mean/std input; this is the fix.) MM-IMDB's HDF5 images are BGR with
    the mean subtracted: `ssnas_tf.data.mmimdb` converts them back to RGB uint8.

    The model is flat (VGG19 is built on the preprocessed tensor), so
    `model.get_layer("block4_conv1")` works.

    Args:
        weights: None (random init), "imagenet" (downloaded by Keras on first
            use into ~/.keras/models; needs internet, e.g. Colab) or the path
            of a local weights file (`.h5` in the Keras applications layout, or
            a `.weights.h5` saved from `keras.applications.VGG19(
            include_top=False)`). Defaults to None.
        input_shape: (height, width, 3), both sides >= 32. Defaults to
            (256, 160, 3), MM-IMDB's poster size.
        feature_prefix: the feature names are `f"{feature_prefix}_{i}"`,
            i = 1..4. Defaults to "Image".
        trainable: whether the VGG weights may be trained. Defaults to False
            (frozen, as in BM-NAS).
        name: model name. Defaults to "vgg19_taps".

    Returns:
        A `keras.Model`: float32 (N, H, W, 3) input named
        `feature_prefix.lower()` -> dict of the 4 taps.

    Example (Colab, with internet):

    >>> backbone = vgg19_taps(weights="imagenet")          # doctest: +SKIP
    >>> features = backbone(np.random.rand(2, 256, 160, 3))  # doctest: +SKIP
    >>> {k: tuple(v.shape) for k, v in features.items()}    # doctest: +SKIP
    {'Image_1': (2, 32, 20, 512), 'Image_2': (2, 32, 20, 512),
     'Image_3': (2, 16, 10, 512), 'Image_4': (2, 8, 5, 512)}
    >>> backbones = build_backbones(data, train_index,      # doctest: +SKIP
    ...                             custom={"image": backbone})
    """
    input_shape = tuple(input_shape)
    if len(input_shape) != 3 or input_shape[-1] != 3:
        raise ValueError(f"vgg19_taps needs input_shape (height, width, 3), got "
                         f"{input_shape}; repeat grayscale images to 3 channels")
    inputs = keras.Input(input_shape, name=feature_prefix.lower())
    x = ImagePreprocess(mode="caffe", name="vgg19_preprocess")(inputs)
    vgg = keras.applications.VGG19(include_top=False, weights=weights,
                                   input_tensor=x, input_shape=input_shape)
    return tap_model(vgg, [layer for _, layer in VGG19_TAP_LAYERS],
                     [f"{feature_prefix}_{i + 1}" for i in range(len(VGG19_TAP_LAYERS))],
                     trainable=trainable, name=name)


@keras.saving.register_keras_serializable(package="ssnas_tf")
class Maxout(layers.Layer):
    """Maxout unit: a linear map to `units * pieces` values, max over the pieces.

    `y[..., u] = max_p (x W + b)[..., u * pieces + p]`, the layout of the
    BM-NAS/GMU PyTorch `Maxout` (`view(..., units, pieces).max(-1)`), so its
    `nn.Linear` weights port by a transpose.

    Args:
        units: output size.
        pieces: number of linear pieces k per unit. Defaults to 5.
        kernel_initializer: Defaults to "glorot_uniform".
        bias_initializer: Defaults to "zeros".

    Reference: Goodfellow et al., "Maxout Networks", ICML 2013.

    Example:

    >>> Maxout(64, pieces=5)(np.zeros((2, 300), "float32")).shape
    (2, 64)
    """

    def __init__(self, units, pieces=5, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if units < 1 or pieces < 1:
            raise ValueError(f"units and pieces must be >= 1, got {units}, {pieces}")
        self.units = int(units)
        self.pieces = int(pieces)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], self.units * self.pieces),
            initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=(self.units * self.pieces,),
                                    initializer=self.bias_initializer)

    def call(self, inputs):
        y = ops.matmul(inputs, self.kernel) + self.bias
        shape = ops.shape(y)
        y = ops.reshape(y, (*shape[:-1], self.units, self.pieces))
        return ops.max(y, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            units=self.units, pieces=self.pieces,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
            bias_initializer=keras.initializers.serialize(self.bias_initializer))
        return config


def maxout_mlp_taps(input_dim: int = 300, feature_prefix: str = "Text",
                    dropout: float = 0.5, hidden=(64, 128), pieces: int = 5,
                    trainable: bool = True, name: str = "maxout_mlp_taps") -> keras.Model:
    """The MM-IMDB reference text backbone: a Maxout MLP with two taps.

    Maxout input_dim -> 64 (k = 5), BatchNorm, Dropout 0.5, Maxout 64 -> 128
    (k = 5), BatchNorm, Dropout 0.5. The taps are the two Maxout outputs BEFORE
    their BatchNorm, as in the reference (`{prefix}_1`: 64-d, `{prefix}_2`:
    128-d); so the second BatchNorm/Dropout, which feeds no tap, is not part
    of the returned model (nor is the reference's final linear classifier).

    The reference never trains this network during the search (its weights stay
    random); here it is trainable and meant to be pretrained with
    `pretrain_backbones` first.

    Args:
        input_dim: size of the input vector (MM-IMDB: 300-d mean word2vec).
            Defaults to 300.
        feature_prefix: feature names `f"{feature_prefix}_1"`, `..._2`.
            Defaults to "Text".
        dropout: dropout rate after each BatchNorm. Defaults to 0.5.
        hidden: the two Maxout widths. Defaults to (64, 128).
        pieces: Maxout pieces k. Defaults to 5.
        trainable: Defaults to True.
        name: model name. Defaults to "maxout_mlp_taps".

    Returns:
        A `keras.Model`: float32 (N, input_dim) input named
        `feature_prefix.lower()` -> `{prefix_1: (N, 64), prefix_2: (N, 128)}`.

    Example:

    >>> model = maxout_mlp_taps()
    >>> {k: v.shape for k, v in model.output.items()}
    {'Text_1': (None, 64), 'Text_2': (None, 128)}
    """
    first, second = hidden
    inputs = keras.Input((input_dim,), name=feature_prefix.lower())
    h1 = Maxout(first, pieces, name="maxout_1")(inputs)
    x = layers.BatchNormalization(name="bn_1", **_BN)(h1)
    x = layers.Dropout(dropout, name="dropout_1")(x)
    h2 = Maxout(second, pieces, name="maxout_2")(x)
    x = layers.BatchNormalization(name="bn_2", **_BN)(h2)
    x = layers.Dropout(dropout, name="dropout_2")(x)
    mlp = keras.Model(inputs, x, name="maxout_mlp")
    return tap_model(mlp, ["maxout_1", "maxout_2"],
                     [f"{feature_prefix}_1", f"{feature_prefix}_2"],
                     trainable=trainable, name=name)


# ---------------------------------------------------------------------------
# Token sequences and text.

# Keras's default punctuation set (TextVectorization "lower_and_strip_punctuation").
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'
_MASK_PATTERN = re.escape(augment_lib.TextAugment().mask_token.lower())


@keras.saving.register_keras_serializable(package="ssnas_tf")
def standardize_text(text):
    """TextVectorization standardisation that drops the augmentation mask token.

    Lower-cases, deletes every `"[MASK]"` (the `TextAugment` default token, so
    masked words leave the mean of the kept words, like masked ids do) and
    strips punctuation as Keras's "lower_and_strip_punctuation" does. Core
    TensorFlow string ops only.

    Args:
        text: tf.string tensor.

    Returns:
        tf.string tensor of the same shape.
    """
    text = tf.strings.lower(text, encoding="utf-8")
    text = tf.strings.regex_replace(text, _MASK_PATTERN, " ")
    return tf.strings.regex_replace(text, _PUNCTUATION, "")


@keras.saving.register_keras_serializable(package="ssnas_tf")
class MaskedTokenMean(layers.Layer):
    """Embeds token ids and averages the vectors of the real tokens.

    Ids in `ignore_ids` (padding 0 and the mask/OOV id 1 by default) do not
    count, so a masked token is left out of the mean rather than averaged in;
    ids outside [0, vocab_size) count as OOV. A sample without real tokens
    gives zeros.

    Args:
        vocab_size: number of embedding rows.
        output_dim: embedding size.
        ignore_ids: ids left out of the mean. Defaults to (0, 1).
        embedding_trainable: whether the embedding matrix is trained; False
            for a pretrained one (set it with `set_embedding`).
            Defaults to True.
        embeddings_initializer: Defaults to "uniform" (Keras's Embedding
            default).

    Example:

    >>> layer = MaskedTokenMean(10, 4)
    >>> layer(np.array([[5, 6, 0, 0], [1, 0, 0, 0]])).shape
    (2, 4)
    """

    def __init__(self, vocab_size, output_dim, ignore_ids=(PAD_ID, MASK_ID),
                 embedding_trainable=True, embeddings_initializer="uniform", **kwargs):
        super().__init__(**kwargs)
        self.vocab_size = int(vocab_size)
        self.output_dim = int(output_dim)
        self.ignore_ids = tuple(int(i) for i in ignore_ids)
        self.embedding_trainable = bool(embedding_trainable)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.embedding = layers.Embedding(
            self.vocab_size, self.output_dim,
            embeddings_initializer=self.embeddings_initializer, name="embedding")
        self.embedding.trainable = self.embedding_trainable

    def build(self, input_shape):
        self.embedding.build(input_shape)

    def set_embedding(self, matrix):
        """Loads a (vocab_size, output_dim) matrix into the embedding."""
        matrix = np.asarray(matrix, dtype="float32")
        if matrix.shape != (self.vocab_size, self.output_dim):
            raise ValueError(f"embedding matrix has shape {matrix.shape}; expected "
                             f"({self.vocab_size}, {self.output_dim})")
        if not self.embedding.built:
            self.embedding.build((None, None))
        self.embedding.embeddings.assign(matrix)

    def call(self, inputs):
        ids = ops.cast(inputs, "int32")
        ids = ops.where((ids < 0) | (ids >= self.vocab_size), MASK_ID, ids)
        keep = ops.ones_like(ids, dtype="bool")
        for ignored in self.ignore_ids:
            keep = keep & ops.not_equal(ids, ignored)
        keep = ops.cast(keep, self.compute_dtype)[..., None]
        vectors = self.embedding(ids) * keep
        count = ops.maximum(ops.sum(keep, axis=-2), 1.0)
        return ops.sum(vectors, axis=-2) / count

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            vocab_size=self.vocab_size, output_dim=self.output_dim,
            ignore_ids=list(self.ignore_ids),
            embedding_trainable=self.embedding_trainable,
            embeddings_initializer=keras.initializers.serialize(
                self.embeddings_initializer))
        return config


# ---------------------------------------------------------------------------
# Small backbones per modality kind.


def _mlp_taps(x, modality, width):
    taps = {}
    for i in (1, 2):
        x = layers.Dense(width, use_bias=False, name=f"{modality}_dense_{i}")(x)
        x = layers.BatchNormalization(name=f"{modality}_bn_{i}", **_BN)(x)
        x = layers.ReLU(name=f"{modality}_{i}")(x)
        taps[f"{modality}_{i}"] = x
    return taps


def _cnn_taps(x, modality, width):
    taps = {}
    for i, channels in ((1, max(1, width // 2)), (2, width)):
        if i == 2:
            x = layers.MaxPooling2D(2, padding="same", name=f"{modality}_pool")(x)
        x = layers.Conv2D(channels, 3, padding="same", use_bias=False,
                          name=f"{modality}_conv_{i}")(x)
        x = layers.BatchNormalization(name=f"{modality}_bn_{i}", **_BN)(x)
        x = layers.ReLU(name=f"{modality}_{i}")(x)
        taps[f"{modality}_{i}"] = x
    return taps


def _check_rank(modality, kind, data, rank, layout):
    if data.ndim != rank:
        raise ValueError(f"modality '{modality}' of kind '{kind}' needs {layout} "
                         f"training data, got shape {data.shape}")


def build_backbone(modality: str, kind: str, train_data, width: int = 64, *,
                   embedding=None, vocab_size: Optional[int] = None,
                   embed_dim: Optional[int] = None, max_tokens: int = 20000,
                   max_length: int = 256, name: Optional[str] = None) -> keras.Model:
    """A small trainable backbone for one modality, with taps `{modality}_1/_2`.

    By kind (input as in `ssnas_tf.data.base`, images/spectrograms as float32
    in [0, 1]):

    - `image`, `spectrogram`: Conv 3x3 (width/2) -> BN -> ReLU = tap 1 (a map
      at input resolution) -> max-pool 2 -> Conv 3x3 (width) -> BN -> ReLU =
      tap 2 (a map at half resolution).
    - `vector`: `Normalization` adapted on `train_data` -> Dense(width) -> BN
      -> ReLU = tap 1 -> Dense(width) -> BN -> ReLU = tap 2.
    - `sequence`: int ids (N, T) -> `MaskedTokenMean` (embedding, mean over
      ids other than pad 0 and mask/OOV 1) -> the vector MLP. A pretrained
      `embedding` matrix (e.g. `dataset.extras["embedding"]`, one row per id)
      is loaded and frozen.
    - `text`: raw strings (N,) -> `TextVectorization` (`standardize_text`,
      whitespace split, vocabulary adapted on `train_data`) ->
      `MaskedTokenMean` -> the vector MLP.

    Args:
        modality: modality name; names the input, the layers and the taps.
        kind: one of `MODALITY_KINDS`.
        train_data: the modality's TRAINING rows (first axis = samples); used
            for the input shape, the normalisation statistics and the
            vocabulary, never for labels.
        width: channels of tap 2 (tap 1 of a CNN has width // 2); MLP width.
            Defaults to 64.
        embedding: `sequence` only: pretrained (vocab_size, dim) matrix,
            frozen. Defaults to None (trainable random embedding).
        vocab_size: `sequence` only: number of ids. Defaults to None, meaning
            the embedding's rows, else the largest training id + 1 (larger
            ids at inference count as OOV).
        embed_dim: embedding size when no matrix is given. Defaults to None,
            meaning `width`.
        max_tokens: `text` only: vocabulary size cap, including pad and OOV.
            Defaults to 20000.
        max_length: `text` only: tokens kept per text. Defaults to 256.
        name: model name. Defaults to None, meaning `f"{modality}_backbone"`.

    Returns:
        A `keras.Model` with one input named `modality` and the output dict
        `{f"{modality}_1": ..., f"{modality}_2": ...}`.

    Example:

    >>> model = build_backbone("pix", "image", np.zeros((10, 16, 15, 1)))
    >>> {k: v.shape for k, v in model.output.items()}
    {'pix_1': (None, 16, 15, 32), 'pix_2': (None, 8, 8, 64)}
    """
    if kind not in MODALITY_KINDS:
        raise ValueError(f"modality '{modality}' has unknown kind '{kind}'; "
                         f"expected one of {MODALITY_KINDS}")
    data = np.asarray(train_data)
    if len(data) == 0:
        raise ValueError(f"modality '{modality}': no training data")
    embed_dim = embed_dim or width
    if kind in ("image", "spectrogram"):
        _check_rank(modality, kind, data, 4, "(N, H, W, C)")
        inputs = keras.Input(data.shape[1:], dtype="float32", name=modality)
        taps = _cnn_taps(inputs, modality, width)
    elif kind == "vector":
        _check_rank(modality, kind, data, 2, "(N, D)")
        inputs = keras.Input(data.shape[1:], dtype="float32", name=modality)
        normalize = layers.Normalization(name=f"{modality}_normalize")
        normalize.adapt(data.astype("float32"))
        taps = _mlp_taps(normalize(inputs), modality, width)
    elif kind == "sequence":
        _check_rank(modality, kind, data, 2, "(N, T) int")
        if not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"modality '{modality}': sequences must be integer ids, "
                             f"got {data.dtype}")
        if embedding is not None:
            embedding = np.asarray(embedding, dtype="float32")
            vocab_size = vocab_size or embedding.shape[0]
            embed_dim = embedding.shape[1]
        vocab_size = vocab_size or max(int(data.max()) + 1, MASK_ID + 1)
        inputs = keras.Input((None,), dtype="int32", name=modality)
        mean = MaskedTokenMean(vocab_size, embed_dim,
                               embedding_trainable=embedding is None,
                               name=f"{modality}_embedding_mean")
        pooled = mean(inputs)
        if embedding is not None:
            mean.set_embedding(embedding)
        taps = _mlp_taps(pooled, modality, width)
    else:  # text
        _check_rank(modality, kind, data, 1, "(N,) str")
        inputs = keras.Input((), dtype="string", name=modality)
        vectorize = layers.TextVectorization(
            max_tokens=max_tokens, standardize=standardize_text,
            output_sequence_length=max_length, name=f"{modality}_vectorize")
        vectorize.adapt(tf.constant(data.astype(str)))
        pooled = MaskedTokenMean(vectorize.vocabulary_size(), embed_dim,
                                 name=f"{modality}_embedding_mean")(vectorize(inputs))
        taps = _mlp_taps(pooled, modality, width)
    return keras.Model(inputs, taps, name=name or f"{modality}_backbone")


def _as_tap_dict(outputs, modality):
    if isinstance(outputs, Mapping):
        return dict(outputs)
    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return {f"{modality}_{i + 1}": out for i, out in enumerate(outputs)}


def _wrap_custom(modality, model):
    """Nests a user model under the name `f"{modality}_backbone"`."""
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1:
        raise ValueError(
            f"custom backbone for '{modality}' must be a built functional model "
            f"with exactly one input (the raw modality tensor); got "
            f"{len(inputs) if inputs else 0} inputs")
    spec = inputs[0]
    outer = keras.Input(spec.shape[1:], dtype=spec.dtype, name=modality)
    return keras.Model(outer, _as_tap_dict(model(outer), modality),
                       name=f"{modality}_backbone")


def build_backbones(dataset, train_index=None, width: int = 64,
                    custom: Optional[Mapping[str, keras.Model]] = None,
                    modalities: Optional[Sequence[str]] = None,
                    name: str = "backbones", **options) -> keras.Model:
    """One model holding a backbone per modality: dict of raw inputs -> all taps.

    Each modality gets `build_backbone(...)` (fitted on the `train_index` rows
    only), or the model given in `custom`. Every per-modality model is a
    nested layer named `f"{modality}_backbone"` (see `backbones_by_modality`).

    Args:
        dataset: a `MultimodalDataset`.
        train_index: rows to fit normalisation statistics and vocabularies on.
            Defaults to None (all rows; leaks test statistics, avoid).
        width: see `build_backbone`. Defaults to 64.
        custom: modality -> user model with ONE input (the raw modality
            tensor, images as float32 [0, 1]) whose output is a dict of named
            taps (e.g. `tap_model(...)`, `vgg19_taps(...)`); a list or single
            tensor output is named `f"{modality}_{i}"`. Defaults to None.
        modalities: the modalities to include, in order. Defaults to None
            (all, in the dataset's order).
        name: model name. Defaults to "backbones".
        **options: passed to every `build_backbone` call (`embed_dim`,
            `max_tokens`, ...). `sequence` modalities get
            `embedding=dataset.extras["embedding"]` when the dataset has one
            and `options` does not set it.

    Returns:
        A `keras.Model` with inputs `{modality: keras.Input(name=modality)}` and
        outputs `{feature name: tap}`, modality by modality.

    Raises:
        ValueError: unknown modality, a custom model with several inputs, or
            two modalities giving the same feature name.

    Example:

    >>> data = load_dataset("mfeat")
    >>> model = build_backbones(data, train_index)
    >>> list(model.output)[:4]
    ['fou_1', 'fou_2', 'fac_1', 'fac_2']
    >>> model = build_backbones(mmimdb, train_index,        # doctest: +SKIP
    ...     custom={"image": vgg19_taps(weights="imagenet")})
    """
    custom = dict(custom or {})
    modalities = list(dataset.modalities if modalities is None else modalities)
    unknown = [m for m in (*modalities, *custom) if m not in dataset.inputs]
    if unknown:
        raise ValueError(f"unknown modalities {unknown}; the dataset has "
                         f"{list(dataset.modalities)}")
    index = (np.arange(dataset.num_samples) if train_index is None
             else np.asarray(train_index, dtype=np.int64))
    inputs, outputs = {}, {}
    for modality in modalities:
        if modality in custom:
            backbone = _wrap_custom(modality, custom[modality])
        else:
            kind = dataset.kinds[modality]
            kwargs = dict(options)
            if kind == "sequence" and "embedding" not in kwargs:
                kwargs["embedding"] = dataset.extras.get("embedding")
            elif kind != "sequence":
                kwargs.pop("embedding", None)
            backbone = build_backbone(modality, kind, dataset.inputs[modality][index],
                                      width, **kwargs)
        spec = backbone.inputs[0]
        inputs[modality] = keras.Input(spec.shape[1:], dtype=spec.dtype, name=modality)
        taps = _as_tap_dict(backbone(inputs[modality]), modality)
        clash = sorted(set(taps) & set(outputs))
        if clash:
            raise ValueError(f"modality '{modality}' gives feature names {clash} "
                             f"that an earlier modality already uses")
        outputs.update(taps)
    return keras.Model(inputs, outputs, name=name)


def backbones_by_modality(model: keras.Model) -> Dict[str, keras.Model]:
    """The per-modality models inside a `build_backbones` model.

    Args:
        model: a model returned by `build_backbones`.

    Returns:
        modality -> its nested backbone (shared, not copied), in input order.
    """
    names = model.input if isinstance(model.input, Mapping) else None
    if names is None:
        raise ValueError(f"model '{model.name}' does not take a dict of modalities; "
                         f"pass the result of build_backbones or a dict")
    out = {}
    for modality in names:
        try:
            out[modality] = model.get_layer(f"{modality}_backbone")
        except ValueError:
            raise ValueError(f"model '{model.name}' has no layer "
                             f"'{modality}_backbone'; pass the result of "
                             f"build_backbones or a dict") from None
    return out


# ---------------------------------------------------------------------------
# Unimodal contrastive pretraining.


def _pool(taps):
    """Global average pool of every tap to (N, D), concatenated."""
    pooled = []
    for tap in taps.values():
        rank = len(tap.shape)
        pooled.append(tap if rank == 2 else ops.mean(tap, axis=tuple(range(1, rank - 1))))
    return ops.concatenate(pooled, axis=-1) if len(pooled) > 1 else pooled[0]


def _pretrain_one(modality, kind, backbone, data, config, epochs, batch_size, seed,
                  temperature, learning_rate, projection_dim, verbose):
    n = len(data)
    if n < 2:
        raise ValueError(f"pretraining '{modality}' needs at least 2 samples, got {n}")
    batch = min(batch_size, n)
    # The same seed for every modality would correlate their batch orders only;
    # the augmentations already differ by modality name.
    view_fn = augment_lib.make_view_pair_fn({modality: kind}, config, seed)
    ds = (tf.data.Dataset.from_tensor_slices({modality: data})
          .shuffle(n, seed=seed, reshuffle_each_iteration=True)
          .batch(batch, drop_remainder=True)
          .repeat()
          .enumerate()
          .map(view_fn, num_parallel_calls=tf.data.AUTOTUNE)
          .prefetch(tf.data.AUTOTUNE))
    # The backbone's taps, pooled and concatenated, are the encoder of a
    # standard contrastive model; the head is dropped afterwards.
    spec = backbone.inputs[0]
    raw = keras.Input(spec.shape[1:], dtype=spec.dtype, name=modality)
    encoder = keras.Model({modality: raw}, _pool(_as_tap_dict(backbone(raw), modality)))
    model = ContrastiveModel(encoder, ProjectionHead(
        projection_dim, name=f"{modality}_pretrain_projection"), temperature=temperature)
    model(next(iter(ds))[0])
    model.compile(keras.optimizers.Adam(learning_rate))
    logs = model.fit(ds, epochs=epochs, steps_per_epoch=n // batch, shuffle=False,
                     verbose=0, callbacks=[_EpochPrinter(modality)] if verbose else [])
    return [float(v) for v in logs.history["loss"]]


class _EpochPrinter(keras.callbacks.Callback):
    """One line per pretraining epoch."""

    def __init__(self, modality):
        super().__init__()
        self.modality = modality

    def on_epoch_end(self, epoch, logs=None):
        print(f"pretrain {self.modality}: epoch {epoch + 1}/{self.params['epochs']} "
              f"loss {logs['loss']:.4f}", flush=True)


def pretrain_backbones(backbones, dataset, train_index,
                       augment_config: Optional[augment_lib.AugmentConfig] = None,
                       epochs: int = 10, batch_size: int = 128, seed: int = 0,
                       temperature: float = 0.5, verbose: int = 1, *,
                       learning_rate: float = 1e-3, projection_dim: int = 128,
                       modalities: Optional[Sequence[str]] = None,
                       return_history: bool = False):
    """Unimodal SimCLR pretraining of each modality's backbone, without labels.

    For each modality separately: batches of its `train_index` rows (labels are
    never read), two views per batch from `ssnas_tf.augment`, the backbone on
    both views (one batch, so BatchNorm sees 2N samples), every tap globally
    average-pooled and concatenated, a fresh `ProjectionHead`, NT-Xent loss;
    Adam updates that backbone's trainable weights and the head (discarded
    afterwards). Other modalities' weights, and frozen layers, are untouched;
    BatchNorm moving statistics of the trained backbone are updated.

    This replaces the BM-NAS reference's text backbone, which stays random and
    is never trained (a known defect): pretrain before searching.

    Batches drop the remainder (n // batch_size steps per epoch, reshuffled
    each epoch); with fewer rows than `batch_size` one batch of all rows is
    used.

    Args:
        backbones: a `build_backbones` model, or a dict modality -> backbone
            model (one input, dict of taps) updated in place.
        dataset: the `MultimodalDataset` the inputs come from.
        train_index: the rows to pretrain on (the unlabeled training pool).
        augment_config: an `AugmentConfig`. Defaults to None
            (`AugmentConfig()`).
        epochs: passes over the rows. Defaults to 10.
        batch_size: samples per batch (2x views). Defaults to 128.
        seed: seeds the shuffling and the augmentation. Defaults to 0.
        temperature: NT-Xent tau. Defaults to 0.5 (SimCLR's small-batch value).
        verbose: print one line per epoch when true. Defaults to 1.
        learning_rate: Adam learning rate. Defaults to 1e-3.
        projection_dim: projection head output size. Defaults to 128.
        modalities: the modalities to pretrain. Defaults to None (all).
        return_history: return per-epoch mean losses instead of the last one.
            Defaults to False.

    Returns:
        modality -> mean loss of the last epoch (a list of per-epoch means with
        `return_history=True`); None for a modality without trainable weights
        (a frozen backbone, skipped).

    Example:

    >>> data = load_dataset("mfeat")
    >>> model = build_backbones(data, train_index)
    >>> losses = pretrain_backbones(model, data, train_index, AugmentConfig(),
    ...                             epochs=5, batch_size=128, seed=0)
    """
    models = (dict(backbones) if isinstance(backbones, Mapping)
              else backbones_by_modality(backbones))
    modalities = list(models if modalities is None else modalities)
    unknown = [m for m in modalities if m not in models or m not in dataset.inputs]
    if unknown:
        raise ValueError(f"cannot pretrain {unknown}: backbones exist for "
                         f"{list(models)}, the dataset has {list(dataset.modalities)}")
    if epochs < 1 or batch_size < 2:
        raise ValueError(f"need epochs >= 1 and batch_size >= 2, got {epochs}, "
                         f"{batch_size}")
    config = augment_config or augment_lib.AugmentConfig()
    index = np.asarray(train_index, dtype=np.int64)
    results = {}
    for modality in modalities:
        backbone = models[modality]
        if not backbone.trainable_weights:
            if verbose:
                print(f"pretrain {modality}: no trainable weights, skipped")
            results[modality] = None
            continue
        data = np.asarray(dataset.inputs[modality])[index]
        if dataset.kinds[modality] == "text":
            data = data.astype(str)
        history = _pretrain_one(
            modality, dataset.kinds[modality], backbone, data, config, epochs,
            batch_size, seed, temperature, learning_rate, projection_dim, verbose)
        results[modality] = history if return_history else history[-1]
    return results


# ---------------------------------------------------------------------------
# The BM-NAS reference backbones, for `build_backbones(custom=...)`.


def reference_backbones(dataset, image_weights=None):
    """The MM-IMDB reference extractors for a dataset's modalities.

    Image modalities get `vgg19_taps` (Image_1..4 = relu4_1, relu4_4, relu5_3,
    pool5); a 300-d vector modality (mean word2vec, MM-IMDB's `features`) gets
    `maxout_mlp_taps` (Text_1, Text_2); a token-sequence modality gets the mean
    of its word vectors (`dataset.extras["embedding"]`, frozen, when present;
    else a learned 300-d embedding) followed by the Maxout MLP. Other
    modalities are left to `build_backbones`' small backbones.

    Args:
        dataset: a `MultimodalDataset`.
        image_weights: None, "imagenet" (downloaded by Keras on first use) or
            a local VGG19 weights file. Defaults to None (random weights).

    Returns:
        A dict modality -> model, to pass as `build_backbones(custom=...)`.
    """
    images = [m for m, k in dataset.kinds.items() if k == "image"]
    texts = [m for m, k in dataset.kinds.items()
             if k == "sequence" or (k == "vector" and dataset.inputs[m].shape[1] == 300)]
    custom = {}
    for modality in images:
        prefix = "Image" if len(images) == 1 else f"Image_{modality}"
        custom[modality] = vgg19_taps(image_weights, dataset.inputs[modality].shape[1:],
                                      feature_prefix=prefix, name=f"{modality}_vgg19")
    for modality in texts:
        prefix = "Text" if len(texts) == 1 else f"Text_{modality}"
        mlp = maxout_mlp_taps(300, feature_prefix=prefix, name=f"{modality}_maxout")
        if dataset.kinds[modality] == "vector":
            custom[modality] = mlp
            continue
        embedding = dataset.extras.get("embedding")
        vocab = int(embedding.shape[0]) if embedding is not None else \
            int(dataset.inputs[modality].max()) + 1
        ids = keras.Input(dataset.inputs[modality].shape[1:], dtype="int32", name=modality)
        mean = MaskedTokenMean(vocab, 300, embedding_trainable=embedding is None,
                               name=f"{modality}_word_mean")
        vectors = mean(ids)
        if embedding is not None:
            mean.set_embedding(embedding)
        custom[modality] = keras.Model(ids, mlp(vectors), name=f"{modality}_maxout_text")
    return custom
