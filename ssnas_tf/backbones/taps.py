"""Tapping a model: any built functional Keras model + layer names -> a model
whose output is the dict of those layers' outputs."""

from typing import Optional, Sequence, Union

import keras

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
    feature_names = _check_feature_names(layer_names, feature_names)
    outputs = _tap_outputs(model, layer_names, feature_names)
    tapped = keras.Model(inputs=_symbolic_inputs(model), outputs=outputs,
                         name=name or f"{model.name}_taps")
    # Per layer: Keras skips the recursive setter when the model's own flag
    # already has the value, which would leave layers frozen by an earlier
    # tap of the same model frozen.
    for layer in tapped.layers:
        layer.trainable = trainable
    tapped.trainable = trainable
    return tapped


def _check_feature_names(layer_names, feature_names):
    if not layer_names:
        raise ValueError("tap_model needs at least one layer name")
    feature_names = list(layer_names if feature_names is None else feature_names)
    if len(feature_names) != len(layer_names):
        raise ValueError(f"got {len(feature_names)} feature names for "
                         f"{len(layer_names)} layers")
    if len(set(feature_names)) != len(feature_names):
        raise ValueError(f"feature names must be distinct, got {feature_names}")
    return feature_names


def _symbolic_inputs(model):
    try:
        inputs = model.input
    except (AttributeError, ValueError) as error:
        raise ValueError(
            f"tap_model needs a built functional model with symbolic inputs; "
            f"'{model.name}' has none ({error}). Build it from keras.Input.") from None
    if isinstance(inputs, (list, tuple)) and len(inputs) == 1:
        # keras.applications built on input_tensor keep a one-element list.
        inputs = inputs[0]
    return inputs


def _tap_outputs(model, layer_names, feature_names):
    """feature name -> the named layer's output tensor in `model`'s graph."""
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
    return outputs
