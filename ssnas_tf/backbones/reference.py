"""The BM-NAS reference backbones for MM-IMDB: VGG19 taps and the Maxout MLP."""

from typing import Optional

import keras
from keras import layers

from ssnas_tf.backbones.layers import BATCH_NORM, ImagePreprocess, MaskedTokenMean, Maxout
from ssnas_tf.backbones.taps import tap_model
from ssnas_tf.dropout import Dropout

# BM-NAS's VGG19 taps in torchvision naming -> Keras layer names.
VGG19_TAP_LAYERS = (
    ("relu4_1", "block4_conv1"),
    ("relu4_4", "block4_conv4"),
    ("relu5_3", "block5_conv3"),
    ("pool5", "block5_pool"),
)


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
    x = layers.BatchNormalization(name="bn_1", **BATCH_NORM)(h1)
    x = Dropout(dropout, name="dropout_1")(x)
    h2 = Maxout(second, pieces, name="maxout_2")(x)
    x = layers.BatchNormalization(name="bn_2", **BATCH_NORM)(h2)
    x = Dropout(dropout, name="dropout_2")(x)
    mlp = keras.Model(inputs, x, name="maxout_mlp")
    return tap_model(mlp, ["maxout_1", "maxout_2"],
                     [f"{feature_prefix}_1", f"{feature_prefix}_2"],
                     trainable=trainable, name=name)



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
