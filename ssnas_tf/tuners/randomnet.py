"""RandomNet's search space: sampling architectures and building them as Keras models.

An architecture is a JSON-able dict, drawn from a seed by `sample_architecture`
and turned into a classifier on raw inputs by `build_randomnet`:

* per modality, a cell of L = 5 layers, each an op from `OPS` with an
  activation from `ACTIVATIONS`; layer l reads layer l - 1 plus, through
  Bernoulli(p) skip connections, any earlier node (node 0 is the cell's stem,
  a pointwise projection to the modality's width). The cell is stacked C_m = 3
  times (same structure, own weights), with a stride-2 max pool between cells
  for maps and sequences.
* a fusion network of D fully connected layers, eq. 1 of the paper:
  f_d = sigma_d(W_d [x_d; y_d; f_{d-1}]), where x_d, y_d, ... are globally
  pooled outputs of cells at depth <= d, each connected with probability 0.5
  (the first layer reads the first cell of every modality that no layer
  would read otherwise: cells deeper than the deepest read one are unused).

Ops per modality kind: 2-D convs and pools for images and spectrograms, their
1-D variants for token sequences (after a trainable embedding), and for
feature vectors a Dense layer for every conv op and identity for the pools
(a vector has no positions to pool over). Vectors are standardised with
statistics of the training samples, as the small backbones do.

`sample_architecture(..., normalization=True)` draws an architecture marked
`"normalization": true`: images and spectrograms are then standardised per
channel with training statistics too, and every conv or Dense op is followed by
batch normalisation before its activation, as in the small backbones. After
training, `precise_batch_norm` sets the batch norm statistics from training
batches: Keras's moving averages lag a random network's drifting activations
after a small budget's few hundred steps, and inference then predicts one
class. The pipeline samples normalised architectures
(`RunConfig.randomnet_normalization`); the paper's have no normalisation
(docs/modalities.md#randomnet-that-learns).

Reference: Alletto et al., "RandomNet: Towards Fully Automatic Neural
Architecture Design for Multimodal Learning" (`docs/fidelity.md`).
"""

import json

import keras
import numpy as np
from keras import layers

from ssnas_tf.errors import ArchitectureError

OPS = ("conv3x3", "conv5x5", "sep_conv3x3", "sep_conv5x5", "max_pool", "avg_pool")
ACTIVATIONS = ("relu", "tanh", "identity", "sigmoid")
SUPPORTED_KINDS = ("image", "spectrogram", "sequence", "text", "vector")
# Spatial rank of each kind's cells (raw text becomes a token sequence).
_RANK = {"image": 2, "spectrogram": 2, "sequence": 1, "text": 1, "vector": 0}
# Raw text: tokens kept per sample, and the vocabulary size.
TEXT_LENGTH = 64
TEXT_MAX_TOKENS = 20000
NUM_LAYERS = 5
NUM_CELLS = 3
SKIP_PROBABILITY = 0.5
WIDTHS = (8, 16, 32)
FUSION_UNITS = (32, 64, 128)
MAX_FUSION_LAYERS = 3
EMBED_DIM = 32
FORMAT = "ssnas_tf.randomnet/1"
# Training batches whose statistics set the batch norm moving averages after
# training (`precise_batch_norm`).
PRECISE_BN_BATCHES = 20


def _sample_cell(rng, num_layers, skip_probability):
    cell = []
    for l in range(1, num_layers + 1):
        skips = [j for j in range(l - 1) if rng.random() < skip_probability]
        cell.append({"op": OPS[rng.integers(len(OPS))],
                     "activation": ACTIVATIONS[rng.integers(len(ACTIVATIONS))],
                     "skips": skips})
    return cell


def _sample_fusion(rng, modalities, num_cells, max_fusion_layers):
    fusion = []
    for d in range(1, int(rng.integers(1, max_fusion_layers + 1)) + 1):
        reads = [[m, c] for m in modalities for c in range(min(d, num_cells))
                 if rng.random() < 0.5]
        if d == 1:  # f_0 does not exist: layer 1 reads at least one cell
            reads = reads or [[modalities[rng.integers(len(modalities))], 0]]
        fusion.append({"units": int(FUSION_UNITS[rng.integers(len(FUSION_UNITS))]),
                       "activation": ACTIVATIONS[rng.integers(len(ACTIVATIONS))],
                       "reads": reads})
    # A modality no layer reads would be dropped from the network: layer 1
    # reads its first cell instead.
    read = {m for layer in fusion for m, _ in layer["reads"]}
    fusion[0]["reads"] += [[m, 0] for m in modalities if m not in read]
    return fusion


def sample_architecture(kinds, seed, num_layers=NUM_LAYERS, num_cells=NUM_CELLS,
                        skip_probability=SKIP_PROBABILITY,
                        max_fusion_layers=MAX_FUSION_LAYERS, normalization=False):
    """Draws one RandomNet architecture; the same seed gives the same one.

    Args:
        kinds: modality name -> kind (`MultimodalDataset.kinds`), in order.
        seed: integer seed of the draw.
        num_layers: L, layers per cell. Defaults to 5.
        num_cells: C_m, stacked cells per modality. Defaults to 3.
        skip_probability: p of each skip connection. Defaults to 0.5.
        max_fusion_layers: D is drawn from 1..this. Defaults to 3.
        normalization: standardised map inputs and batch norm after every
            weighted op (module doc). Defaults to False.

    Returns:
        A JSON-able dict (see `validate_architecture`).

    Example:
    >>> arch = sample_architecture({"pix": "image", "fou": "vector"}, seed=3)
    >>> model = build_randomnet(arch, {"pix": (16, 15, 1), "fou": (76,)}, 10)
    """
    _check_kinds(kinds)
    rng = np.random.default_rng(seed)
    names = list(kinds)
    arch = {"format": FORMAT, "seed": int(seed), "modalities": {}, "fusion": None}
    if normalization:
        arch["normalization"] = True
    for name in names:
        arch["modalities"][name] = {
            "kind": kinds[name], "width": int(WIDTHS[rng.integers(len(WIDTHS))]),
            "num_cells": num_cells, "cell": _sample_cell(rng, num_layers, skip_probability)}
    arch["fusion"] = _sample_fusion(rng, names, num_cells, max_fusion_layers)
    return arch


def _check_kinds(kinds):
    for name, kind in kinds.items():
        if kind not in SUPPORTED_KINDS:
            raise ArchitectureError(
                f"modality '{name}' of kind '{kind}': RandomNet works on raw "
                f"{', '.join(SUPPORTED_KINDS)} inputs only")


def validate_architecture(arch):
    """Raises ArchitectureError naming the first malformed field; returns `arch`."""
    try:
        _validate(arch)
    except (AttributeError, KeyError, TypeError, ValueError) as err:
        if isinstance(err, ArchitectureError):
            raise
        raise ArchitectureError(f"malformed architecture ({err!r})") from None
    return arch


def _validate(arch):
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise ArchitectureError(f"format: expected '{FORMAT}'")
    if not isinstance(arch.get("normalization", False), bool):
        raise ArchitectureError("normalization: need true or false")
    modalities = arch.get("modalities")
    if not isinstance(modalities, dict) or not modalities:
        raise ArchitectureError("modalities: need a non-empty object")
    for name, spec in modalities.items():
        field = f"modalities.{name}"
        _check_kinds({name: spec.get("kind")})
        if not isinstance(spec.get("width"), int) or spec["width"] < 1:
            raise ArchitectureError(f"{field}.width: need a positive integer")
        if not isinstance(spec.get("num_cells"), int) or spec["num_cells"] < 1:
            raise ArchitectureError(f"{field}.num_cells: need a positive integer")
        for l, layer in enumerate(spec.get("cell") or [None], start=1):
            where = f"{field}.cell[{l - 1}]"
            if not isinstance(layer, dict) or layer.get("op") not in OPS:
                raise ArchitectureError(f"{where}.op: need one of {OPS}")
            if layer.get("activation") not in ACTIVATIONS:
                raise ArchitectureError(f"{where}.activation: need one of {ACTIVATIONS}")
            if any(not isinstance(j, int) or not 0 <= j < l - 1 for j in layer.get("skips", [])):
                raise ArchitectureError(f"{where}.skips: need node indices in [0, {l - 1})")
    fusion = arch.get("fusion")
    if not isinstance(fusion, list) or not fusion:
        raise ArchitectureError("fusion: need at least one layer")
    for d, layer in enumerate(fusion, start=1):
        where = f"fusion[{d - 1}]"
        if layer.get("activation") not in ACTIVATIONS or not isinstance(layer.get("units"), int):
            raise ArchitectureError(f"{where}: need integer units and an activation")
        for m, c in layer.get("reads", []):
            if m not in modalities or not 0 <= c < min(d, modalities[m]["num_cells"]):
                raise ArchitectureError(f"{where}.reads: no cell {c} of '{m}' at depth <= {d}")
        if d == 1 and not layer.get("reads"):
            raise ArchitectureError(f"{where}.reads: the first layer must read a cell")


def architecture_to_json(arch):
    return json.dumps(validate_architecture(arch), indent=2)


def architecture_from_json(text, source="architecture"):
    try:
        return validate_architecture(json.loads(text))
    except json.JSONDecodeError as err:
        raise ArchitectureError(f"{source}: malformed JSON ({err})") from None
    except ArchitectureError as err:
        raise ArchitectureError(f"{source}: {err}") from None


# -- the Keras model ----------------------------------------------------------


def _activation(name):
    return "linear" if name == "identity" else name


def _op(kind, op, width, name):
    """The layer for one op; None means identity (pools on vectors)."""
    rank = _RANK[kind]
    if rank == 0:
        return None if op.endswith("pool") else layers.Dense(width, name=name)
    size = 5 if "5x5" in op else 3
    if op.endswith("pool"):
        cls = {("max", 1): layers.MaxPooling1D, ("max", 2): layers.MaxPooling2D,
               ("avg", 1): layers.AveragePooling1D, ("avg", 2): layers.AveragePooling2D}
        return cls[(op[:3], rank)](3, strides=1, padding="same", name=name)
    if op.startswith("sep"):
        cls = layers.SeparableConv1D if rank == 1 else layers.SeparableConv2D
    else:
        cls = layers.Conv1D if rank == 1 else layers.Conv2D
    return cls(width, size, padding="same", name=name)


def _cell(x, spec, prefix, normalization=False):
    """One cell: a pointwise stem, then the L layers with their skips (batch
    norm after every conv or Dense op with `normalization`)."""
    kind, width = spec["kind"], spec["width"]
    stem = layers.Dense(width, name=f"{prefix}_stem")  # pointwise on the last axis
    nodes = [stem(x)]
    for l, layer in enumerate(spec["cell"], start=1):
        inputs = [nodes[l - 1]] + [nodes[j] for j in layer["skips"]]
        h = inputs[0] if len(inputs) == 1 else layers.Add(name=f"{prefix}_add{l}")(inputs)
        op = _op(kind, layer["op"], width, f"{prefix}_l{l}_{layer['op']}")
        if op is not None:
            h = op(h)
            if normalization and not layer["op"].endswith("pool"):
                h = layers.BatchNormalization(name=f"{prefix}_l{l}_bn")(h)
        nodes.append(layers.Activation(_activation(layer["activation"]),
                                       name=f"{prefix}_l{l}_{layer['activation']}")(h))
    return nodes[-1]


def _modality_cells(name, spec, x, normalization=False):
    """The stacked cells of one modality; returns their globally pooled outputs."""
    rank = _RANK[spec["kind"]]
    pooled = []
    for c in range(spec["num_cells"]):
        if c and rank:
            pool = layers.MaxPooling1D if rank == 1 else layers.MaxPooling2D
            x = pool(2, padding="same", name=f"{name}_reduce{c}")(x)
        x = _cell(x, spec, f"{name}_cell{c}", normalization)
        glob = {1: layers.GlobalAveragePooling1D, 2: layers.GlobalAveragePooling2D}
        pooled.append(glob[rank](name=f"{name}_cell{c}_pool")(x) if rank else x)
    return pooled


def _input_layer(name, spec, shape, input_stats, vocabulary, normalization=False):
    """Raw input -> the tensor the first cell reads."""
    kind = spec["kind"]
    if kind == "sequence":
        inp = keras.Input(shape, dtype="int32", name=name)
        return inp, layers.Embedding(vocabulary, EMBED_DIM, name=f"{name}_embed")(inp)
    if kind == "text":
        # The backbones' standardisation (core TF ops: servable), then the
        # word ids of the training text's vocabulary.
        from ssnas_tf.backbones.layers import standardize_text
        inp = keras.Input((), dtype="string", name=name)
        vectorize = layers.TextVectorization(
            standardize=standardize_text, output_sequence_length=TEXT_LENGTH,
            vocabulary=list(vocabulary), name=f"{name}_vectorize")
        embed = layers.Embedding(vectorize.vocabulary_size(), EMBED_DIM,
                                 name=f"{name}_embed")
        return inp, embed(vectorize(inp))
    inp = keras.Input(shape, dtype="float32", name=name)
    if kind == "vector" or (normalization and name in input_stats):
        mean, variance = input_stats[name]  # per feature, or per channel of a map
        return inp, layers.Normalization(mean=mean, variance=variance,
                                         name=f"{name}_norm")(inp)
    return inp, inp


def build_randomnet(arch, input_shapes, num_classes, vector_stats=None,
                    vocab_sizes=None, name="randomnet"):
    """The classifier (raw inputs -> logits) of one architecture.

    Args:
        arch: an architecture dict (`sample_architecture`).
        input_shapes: modality -> per-sample shape of its raw input (images
            as float32 in [0, 1], channels last).
        num_classes: logits width.
        vector_stats: modality -> (mean, variance) per feature, for vector
            modalities, and per channel for images and spectrograms (used
            by architectures with `"normalization": true`). Defaults to None
            (zero mean, unit variance).
        vocab_sizes: modality -> vocabulary size, for sequence modalities;
            for raw text modalities, the vocabulary itself (a list of tokens,
            `ssnas_tf.tuners.search.model_inputs_info` adapts it on the
            training rows).
        name: model name. Defaults to "randomnet".

    Returns:
        A functional `keras.Model` with inputs named by modality.
    """
    validate_architecture(arch)
    normalization = arch.get("normalization", False)
    inputs, pooled = {}, {}
    for m, spec in arch["modalities"].items():
        if m not in input_shapes:
            raise ArchitectureError(f"modalities.{m}: no input shape given for it")
        stats = dict(vector_stats or {})
        if spec["kind"] == "vector":
            stats.setdefault(m, (np.zeros(input_shapes[m][-1:]),
                                 np.ones(input_shapes[m][-1:])))
        inputs[m], x = _input_layer(m, spec, tuple(input_shapes[m]), stats,
                                    (vocab_sizes or {}).get(m, 2), normalization)
        pooled[m] = _modality_cells(m, spec, x, normalization)
    f = None
    for d, layer in enumerate(arch["fusion"], start=1):
        parts = [pooled[m][c] for m, c in layer["reads"]] + ([f] if f is not None else [])
        h = parts[0] if len(parts) == 1 else layers.Concatenate(name=f"fusion{d}_in")(parts)
        f = layers.Dense(layer["units"], activation=_activation(layer["activation"]),
                         name=f"fusion{d}")(h)
    logits = layers.Dense(num_classes, name="logits")(f)
    return keras.Model(inputs, logits, name=name)


def precise_batch_norm(model, batches, num_batches=PRECISE_BN_BATCHES):
    """Sets each BatchNormalization layer's moving mean and variance to the
    average of its batch statistics over `num_batches` batches of `batches`
    (`(inputs, labels)` pairs), the network run as in training with its
    weights fixed ("precise BN", Wu & Johnson 2021).

    Why: a random network's normalised activations can have a tiny variance
    that drifts while the weights move, and after the few hundred steps of a
    small budget Keras's exponential moving averages still lag it; inference
    then collapses to one class (AV-MNIST-layout data: weighted F1 0.04 in
    inference mode where the same weights score 0.65 with batch statistics,
    docs/modalities.md). Returns the number of layers updated.
    """
    import tensorflow as tf
    norms = [layer for layer in model.layers
             if isinstance(layer, layers.BatchNormalization)]
    if not norms:
        return 0
    probe = keras.Model(model.inputs, [layer.input for layer in norms])

    # Traced once: eagerly, a normalised network of a few hundred layers takes
    # about 0.2 s a batch in Python overhead alone (mfeat, 244 layers).
    @tf.function(reduce_retracing=True, autograph=False)
    def batch_moments(x):
        return [tf.nn.moments(tf.cast(h, "float32"), list(range(len(h.shape) - 1)))
                for h in probe(x, training=True)]

    totals = None
    seen = 0
    for x, _ in batches.take(num_batches):
        moments = batch_moments(x)
        totals = moments if totals is None else [
            (m0 + m1, v0 + v1) for (m0, v0), (m1, v1) in zip(totals, moments)]
        seen += 1
    if not seen:
        raise ValueError("precise_batch_norm: `batches` yielded no batch")
    for layer, (mean, variance) in zip(norms, totals):
        layer.moving_mean.assign(mean / seen)
        layer.moving_variance.assign(variance / seen)
    return len(norms)
