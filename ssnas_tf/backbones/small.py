"""Small backbones per modality kind, joined into one multi-modality model."""

from typing import Dict, Mapping, Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from ssnas_tf.backbones.layers import BATCH_NORM, MaskedTokenMean, standardize_text
from ssnas_tf.data.audio import SAMPLE_RATE_KEY, LogMelSpectrogram
from ssnas_tf.data.tabular import COLUMNS_KEY, NUM_BUCKETS, NUMERIC, TABULAR, TabularEncoder
from ssnas_tf.modalities import MASK_ID, MODALITY_KINDS



# ---------------------------------------------------------------------------
# Small backbones per modality kind.


def _mlp_taps(x, modality, width):
    taps = {}
    for i in (1, 2):
        x = layers.Dense(width, use_bias=False, name=f"{modality}_dense_{i}")(x)
        x = layers.BatchNormalization(name=f"{modality}_bn_{i}", **BATCH_NORM)(x)
        x = layers.ReLU(name=f"{modality}_{i}")(x)
        taps[f"{modality}_{i}"] = x
    return taps


# Larger maps are first cut to at most this size by a strided stem, so the
# activations of a batch stay bounded (MM-IMDB posters are 256 x 160).
STEM_MAX_SIZE = 64


def _cnn_taps(x, modality, width):
    taps = {}
    stride = 1
    while max(x.shape[1], x.shape[2]) / stride > STEM_MAX_SIZE:
        stride *= 2
    if stride > 1:  # a patchify stem: one stride x stride convolution
        x = layers.Conv2D(max(1, width // 2), stride, strides=stride, use_bias=False,
                          name=f"{modality}_stem")(x)
        x = layers.BatchNormalization(name=f"{modality}_bn_stem", **BATCH_NORM)(x)
        x = layers.ReLU(name=f"{modality}_stem_relu")(x)
    for i, channels in ((1, max(1, width // 2)), (2, width)):
        if i == 2:
            x = layers.MaxPooling2D(2, padding="same", name=f"{modality}_pool")(x)
        x = layers.Conv2D(channels, 3, padding="same", use_bias=False,
                          name=f"{modality}_conv_{i}")(x)
        x = layers.BatchNormalization(name=f"{modality}_bn_{i}", **BATCH_NORM)(x)
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
                   max_length: int = 256, column_types: Optional[Sequence[str]] = None,
                   sample_rate: Optional[int] = None,
                   name: Optional[str] = None) -> keras.Model:
    """A small trainable backbone for one modality, with taps `{modality}_1/_2`.

    By kind (input as in `ssnas_tf.data.base`, images/spectrograms as float32
    in [0, 1]):

    - `image`, `spectrogram`: Conv 3x3 (width/2) -> BN -> ReLU = tap 1 (a map
      at input resolution) -> max-pool 2 -> Conv 3x3 (width) -> BN -> ReLU =
      tap 2 (a map at half resolution). Inputs larger than 64 pixels on a side
      first pass a strided stem (a stride-s s x s Conv -> BN -> ReLU, s the
      power of two that brings them to <= 64), so activations stay bounded.
    - `vector`: `Normalization` adapted on `train_data` -> Dense(width) -> BN
      -> ReLU = tap 1 -> Dense(width) -> BN -> ReLU = tap 2.
    - `sequence`: int ids (N, T) -> `MaskedTokenMean` (embedding, mean over
      ids other than pad 0 and mask/OOV 1) -> the vector MLP. A pretrained
      `embedding` matrix (e.g. `dataset.extras["embedding"]`, one row per id)
      is loaded and frozen.
    - `text`: raw strings (N,) -> `TextVectorization` (`standardize_text`,
      whitespace split, vocabulary adapted on `train_data`) ->
      `MaskedTokenMean` -> the vector MLP.
    - `tabular`: float32 (N, C) table columns -> `TabularEncoder` (numeric
      columns normalised on `train_data`, missing indicators, categories
      one-hot) -> the vector MLP.
    - `audio`: float32 (N, L) waveforms -> `LogMelSpectrogram` ->
      `Normalization` (one mean/variance adapted on the training clips) ->
      the CNN of `spectrogram`.

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
        column_types: `tabular` only: "numeric" / "categorical" per column.
            Defaults to None (all numeric).
        sample_rate: `audio` only: samples per second. Required for audio.
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
        inputs, taps = _image_backbone(modality, kind, data, width)
    elif kind == "vector":
        inputs, taps = _vector_backbone(modality, kind, data, width)
    elif kind == "sequence":
        inputs, taps = _sequence_backbone(modality, kind, data, width, embedding,
                                          vocab_size, embed_dim)
    elif kind == "tabular":
        inputs, taps = _tabular_backbone(modality, kind, data, width, column_types)
    elif kind == "audio":
        inputs, taps = _audio_backbone(modality, kind, data, width, sample_rate)
    else:
        inputs, taps = _text_backbone(modality, kind, data, width, embed_dim,
                                      max_tokens, max_length)
    return keras.Model(inputs, taps, name=name or f"{modality}_backbone")


def _image_backbone(modality, kind, data, width):
    _check_rank(modality, kind, data, 4, "(N, H, W, C)")
    inputs = keras.Input(data.shape[1:], dtype="float32", name=modality)
    return inputs, _cnn_taps(inputs, modality, width)


def _vector_backbone(modality, kind, data, width):
    _check_rank(modality, kind, data, 2, "(N, D)")
    inputs = keras.Input(data.shape[1:], dtype="float32", name=modality)
    normalize = layers.Normalization(name=f"{modality}_normalize")
    normalize.adapt(data.astype("float32"))
    return inputs, _mlp_taps(normalize(inputs), modality, width)


def _tabular_backbone(modality, kind, data, width, column_types):
    _check_rank(modality, kind, data, 2, "(N, C)")
    column_types = list(column_types or [NUMERIC] * data.shape[1])
    if len(column_types) != data.shape[1]:
        raise ValueError(f"modality '{modality}': {len(column_types)} column types for "
                         f"{data.shape[1]} columns")
    inputs = keras.Input(data.shape[1:], dtype="float32", name=modality)
    encoder = TabularEncoder(column_types, NUM_BUCKETS, name=f"{modality}_encode")
    encoder.adapt(data)
    return inputs, _mlp_taps(encoder(inputs), modality, width)


AUDIO_ADAPT_ROWS = 512  # training clips the log-mel statistics are taken from


def _audio_backbone(modality, kind, data, width, sample_rate):
    _check_rank(modality, kind, data, 2, "(N, samples)")
    if not sample_rate:
        raise ValueError(f"modality '{modality}': audio needs its sample_rate (a "
                         f"dataset's extras['audio_sample_rate'])")
    inputs = keras.Input(data.shape[1:], dtype="float32", name=modality)
    mel = LogMelSpectrogram(sample_rate, name=f"{modality}_log_mel")
    normalize = layers.Normalization(axis=None, name=f"{modality}_normalize")
    normalize.adapt(mel(data[:AUDIO_ADAPT_ROWS].astype("float32")))
    return inputs, _cnn_taps(normalize(mel(inputs)), modality, width)


def _sequence_backbone(modality, kind, data, width, embedding, vocab_size, embed_dim):
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
    mean = MaskedTokenMean(vocab_size, embed_dim, embedding_trainable=embedding is None,
                           name=f"{modality}_embedding_mean")
    pooled = mean(inputs)
    if embedding is not None:
        mean.set_embedding(embedding)
    return inputs, _mlp_taps(pooled, modality, width)


def _text_backbone(modality, kind, data, width, embed_dim, max_tokens, max_length):
    _check_rank(modality, kind, data, 1, "(N,) str")
    inputs = keras.Input((), dtype="string", name=modality)
    vectorize = layers.TextVectorization(
        max_tokens=max_tokens, standardize=standardize_text,
        output_sequence_length=max_length, name=f"{modality}_vectorize")
    vectorize.adapt(tf.constant(data.astype(str)))
    pooled = MaskedTokenMean(vectorize.vocabulary_size(), embed_dim,
                             name=f"{modality}_embedding_mean")(vectorize(inputs))
    return inputs, _mlp_taps(pooled, modality, width)


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
        backbone = (_wrap_custom(modality, custom[modality]) if modality in custom
                    else _default_backbone(dataset, modality, index, width, options))
        spec = backbone.inputs[0]
        inputs[modality] = keras.Input(spec.shape[1:], dtype=spec.dtype, name=modality)
        taps = _as_tap_dict(backbone(inputs[modality]), modality)
        clash = sorted(set(taps) & set(outputs))
        if clash:
            raise ValueError(f"modality '{modality}' gives feature names {clash} "
                             f"that an earlier modality already uses")
        outputs.update(taps)
    return keras.Model(inputs, outputs, name=name)


def _default_backbone(dataset, modality, index, width, options):
    """`build_backbone` on the training rows; sequences get the dataset's embedding."""
    kind = dataset.kinds[modality]
    kwargs = dict(options)
    if kind == "sequence" and "embedding" not in kwargs:
        kwargs["embedding"] = dataset.extras.get("embedding")
    elif kind != "sequence":
        kwargs.pop("embedding", None)
    if kind == "tabular" and modality == TABULAR and COLUMNS_KEY in dataset.extras:
        kwargs["column_types"] = [c["type"] for c in dataset.extras[COLUMNS_KEY]]
    if kind == "audio":
        kwargs.setdefault("sample_rate", dataset.extras.get(SAMPLE_RATE_KEY))
    # Maps only need their shape: one row, not the (maybe on-disk) images.
    rows = index[:1] if kind in ("image", "spectrogram") else index
    return build_backbone(modality, kind, dataset.inputs[modality][rows], width, **kwargs)


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
