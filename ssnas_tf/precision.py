"""Mixed precision: the policy names a run accepts, and a scope that sets one.

Under a mixed policy the layers compute in bfloat16 or float16 and keep float32
variables. What stays float32 whatever the policy: the architecture parameters
alpha, beta, gamma and their softmaxes (`SearchNetwork`), the heads
(`ProjectionHead`, `classifier_head`), the losses and the metrics. Under
float16 both optimizers of the search are loss-scaled.
"""

import contextlib

from ssnas_tf.errors import ConfigError

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def check_precision(name, field="precision"):
    """Raises ValueError naming `field` unless `name` is one of `PRECISIONS`."""
    if name not in PRECISIONS:
        raise ConfigError(f"{field} must be one of {PRECISIONS}, got '{name}'")


@contextlib.contextmanager
def precision_scope(name):
    """Sets Keras's global dtype policy to `name` inside the block, then restores it.

    Layers take the policy when they are created, so build the models inside.

    Example:
    >>> with precision_scope("mixed_bfloat16"):
    ...     model = build_and_train()
    """
    import keras
    check_precision(name)
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)
