"""Pruning a classifier to the modalities its fusion network reads.

A classifier built by `ssnas_tf.workflow.run.Run` takes every modality of the
dataset (the joint backbones model has one input per modality), although the
derived fusion network reads only the features `genotype.used_inputs`. Served
as it is, the signature would demand inputs that cannot change the answer.
`prune_classifier` rebuilds the classifier from the per-modality backbones
that produce those features; the layers (and so the weights) are shared, and
the outputs are identical.
"""

from typing import Dict, Mapping, Tuple

import keras

from ssnas_tf.backbones.small import backbones_by_modality
from ssnas_tf.nas.model import DerivedNetwork
from ssnas_tf.errors import PruneError


def _single_fusion(classifier):
    fusions = [layer for layer in classifier.layers if isinstance(layer, DerivedNetwork)]
    if len(fusions) != 1:
        raise PruneError(
            f"model '{classifier.name}': expected one DerivedNetwork layer, found "
            f"{len(fusions)}")
    return fusions[0]


def _modality_backbones(classifier) -> Dict[str, keras.Model]:
    """modality -> its backbone, from the nested `build_backbones` model(s)."""
    out = {}
    for layer in classifier.layers:
        if isinstance(layer, keras.Model) and isinstance(
                getattr(layer, "input", None), Mapping):
            try:
                out.update(backbones_by_modality(layer))
            except ValueError:
                continue
    return out


def feature_modalities(classifier) -> Dict[str, str]:
    """Feature name -> the modality whose backbone produces it.

    Args:
        classifier: a functional model holding a `build_backbones` model.

    Returns:
        One entry per backbone tap, in modality order.
    """
    return {feature: modality
            for modality, backbone in _modality_backbones(classifier).items()
            for feature in backbone.output}


def used_modalities(classifier) -> Tuple[str, ...]:
    """The modalities the classifier's fusion network reads, in input order.

    Args:
        classifier: a functional model: dict of modalities -> backbones ->
            `DerivedNetwork` -> head.

    Returns:
        The modality names whose features the genotype uses.

    Raises:
        PruneError: no single DerivedNetwork, or a used feature that no
            backbone produces.
    """
    fusion = _single_fusion(classifier)
    owner = feature_modalities(classifier)
    missing = [f for f in fusion.input_names if f not in owner]
    if missing:
        raise PruneError(f"model '{classifier.name}': features {missing} used by the "
                         f"genotype come from no per-modality backbone")
    used = {owner[f] for f in fusion.input_names}
    return tuple(m for m in classifier.input if m in used)


def prune_classifier(classifier: keras.Model) -> keras.Model:
    """The classifier restricted to the modalities its genotype reads.

    Args:
        classifier: a functional model taking a dict modality -> raw tensor,
            made of a `build_backbones` model, one `DerivedNetwork` and a head
            on the fusion output (what `Run.finetune` saves).

    Returns:
        A model over only `used_modalities(classifier)` that shares the
        classifier's layers and gives the same outputs; the classifier itself
        when it already takes no other input or holds no `DerivedNetwork`.

    Raises:
        PruneError: a dict input, but several DerivedNetworks or features
            that no per-modality backbone produces.

    Example:
    >>> served = prune_classifier(keras.models.load_model("run/classifier.keras"))
    >>> list(served.input)  # only the modalities the genotype reads
    ['fou']
    """
    if not isinstance(getattr(classifier, "input", None), Mapping):
        raise PruneError(f"model '{classifier.name}' does not take a dict of modalities")
    if not any(isinstance(layer, DerivedNetwork) for layer in classifier.layers):
        return classifier  # no genotype (e.g. a RandomNet baseline): nothing to prune
    used = used_modalities(classifier)
    if set(used) == set(classifier.input):
        return classifier
    fusion = _single_fusion(classifier)
    backbones = _modality_backbones(classifier)
    # Everything after the fusion network (the head), as one model; made
    # before the fusion layer is called again below.
    head = keras.Model(fusion.output, classifier.output, name="head")
    inputs, features = {}, {}
    for modality in used:
        spec = classifier.input[modality]
        inputs[modality] = keras.Input(spec.shape[1:], dtype=spec.dtype, name=modality)
        # Frozen backbones run in inference mode, as in Run.build_encoder.
        features.update(backbones[modality](inputs[modality], training=False))
    fused = fusion({f: features[f] for f in fusion.input_names})
    return keras.Model(inputs, head(fused), name=classifier.name)


__all__ = ["PruneError", "feature_modalities", "prune_classifier", "used_modalities"]
