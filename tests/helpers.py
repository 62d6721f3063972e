"""Helpers shared by the layer tests."""


def randomise_weights(layer, rng):
    """Random values in every variable (positive where a variance is expected),
    so that inference-mode checks exercise the learned and the moving statistics."""
    for v in layer.weights:
        value = rng.normal(size=v.shape)
        if "variance" in v.name:
            value = rng.uniform(0.5, 2.0, size=v.shape)
        v.assign(value.astype("float32"))
