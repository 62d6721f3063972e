"""The backbones' own layers: VGG preprocessing, Maxout, masked token mean and
the text standardisation shared by training and serving."""

import re

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from ssnas_tf.modalities import MASK_ID, PAD_ID
from ssnas_tf.ssl import augment as augment_lib

# PyTorch's BatchNorm defaults (momentum 0.1 there = 0.9 here): Keras's 0.99
# leaves the moving statistics far from the batch statistics after the few
# hundred steps of a small pretraining run.
BATCH_NORM = dict(momentum=0.9, epsilon=1e-5)


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



# ---------------------------------------------------------------------------
# Token sequences and text.

# Keras's default punctuation set (TextVectorization "lower_and_strip_punctuation").
_PUNCTUATION = r'[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~\']'
_MASK_PATTERN = re.escape(augment_lib.TextAugment().mask_token.lower())


# NFKC folds the full-width ASCII forms U+FF01..U+FF5E onto U+0021..U+007E and
# the ideographic space U+3000 onto U+0020; core TensorFlow has no NFKC op
# (tensorflow-text's would not load in TF Serving), so this subset is done here.
_FULLWIDTH_FIRST, _FULLWIDTH_LAST, _FULLWIDTH_SHIFT = 0xFF01, 0xFF5E, 0xFEE0
_IDEOGRAPHIC_SPACE = 0x3000


def fold_width(text):
    """Maps full-width ASCII letters, digits, punctuation and spaces to ASCII.

    The part of Unicode NFKC that matters for text typed on CJK keyboards
    ("Ｆｕｌｌ" -> "Full", U+3000 -> " "), with core TensorFlow ops only.
    Other NFKC mappings (ligatures, compatibility digits, ...) are not applied
    anywhere in ssnas_tf. Invalid UTF-8 bytes become U+FFFD.

    Args:
        text: tf.string tensor of any shape.

    Returns:
        tf.string tensor of the same shape.
    """
    codes = tf.strings.unicode_decode(text, "UTF-8", errors="replace")

    def fold(c):
        c = tf.where((c >= _FULLWIDTH_FIRST) & (c <= _FULLWIDTH_LAST),
                     c - _FULLWIDTH_SHIFT, c)
        return tf.where(tf.equal(c, _IDEOGRAPHIC_SPACE), tf.constant(0x20, c.dtype), c)

    codes = (tf.ragged.map_flat_values(fold, codes) if isinstance(codes, tf.RaggedTensor)
             else fold(codes))
    return tf.strings.unicode_encode(codes, "UTF-8")


@keras.saving.register_keras_serializable(package="ssnas_tf")
def standardize_text(text):
    """The one text normalisation of ssnas_tf, inside every text model.

    Folds full-width forms to ASCII (`fold_width`), lower-cases (UTF-8 aware),
    deletes every `"[MASK]"` (the `TextAugment` default token, so masked words
    leave the mean of the kept words, like masked ids do) and strips
    punctuation as Keras's "lower_and_strip_punctuation" does. Core TensorFlow
    string ops only. Because it runs inside the model's `TextVectorization`,
    augmented views, fine-tuning, evaluation and the TF Serving export all see
    the same strings; neither loaders, augmentation nor clients normalise.

    Args:
        text: tf.string tensor.

    Returns:
        tf.string tensor of the same shape.

    Example:
    >>> standardize_text(tf.constant("Ｆｕｌｌ-width ＴＥＸＴ")).numpy().decode()
    'fullwidth text'
    """
    text = tf.strings.lower(fold_width(text), encoding="utf-8")
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
        # The parent's dtype policy: a sublayer made here is not saved with the
        # model, so without it a mixed-precision model reloaded under float32
        # would mix a float32 embedding with bfloat16 masks.
        self.embedding = layers.Embedding(
            self.vocab_size, self.output_dim, dtype=self.dtype_policy,
            embeddings_initializer=self.embeddings_initializer, name="embedding")
        # A layer reloaded frozen (config trainable=False) keeps its embedding
        # frozen: Keras restores `trainable` on this layer only, not on sublayers.
        self.embedding.trainable = self.embedding_trainable and self.trainable

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
