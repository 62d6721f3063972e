"""Which devices a run trains on: a `tf.distribute` strategy from a name.

    none          TensorFlow's default strategy (one device)
    mirrored      MirroredStrategy over this machine's GPUs (or its CPU)
    multi-worker  MultiWorkerMirroredStrategy over the workers that the
                  TF_CONFIG environment variable lists; every worker runs the
                  same command with its own task index

Models and optimizers must be created under the strategy's scope (`Run` does
so); NT-Xent then gathers the projections of all replicas
(`ssnas_tf.ssl.distributed`).
"""

import json
import os

from ssnas_tf.errors import DeviceError

DISTRIBUTE = ("none", "mirrored", "multi-worker")


def _check_tf_config():
    """The parsed TF_CONFIG of a multi-worker run; a clear error when unusable."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise DeviceError(
            "--distribute multi-worker needs the TF_CONFIG environment variable, e.g. "
            "TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, "
            "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as err:
        raise DeviceError(f"TF_CONFIG: expected cluster.worker (a list of host:port) "
                          f"and task.type/task.index, got {raw!r} ({err})") from None
    if not isinstance(workers, list) or not 0 <= index < len(workers):
        raise DeviceError(f"TF_CONFIG: task.index {index} is not a position in "
                          f"cluster.worker {workers!r}")
    return config


def make_strategy(distribute="none"):
    """The `tf.distribute.Strategy` for a `--distribute` value.

    Multi-worker strategies must be created before TensorFlow runs any op in
    the process (TensorFlow's rule); create the strategy first.

    Args:
        distribute: one of `DISTRIBUTE`. Defaults to "none".

    Returns:
        A strategy; `tf.distribute.get_strategy()` (the default) for "none".

    Example:
    >>> strategy = make_strategy("mirrored")
    >>> with strategy.scope():
    ...     model = build_model()
    """
    if distribute not in DISTRIBUTE:
        raise DeviceError(f"--distribute must be one of {DISTRIBUTE}, got '{distribute}'")
    if distribute == "multi-worker":
        _check_tf_config()
    import tensorflow as tf
    if distribute == "none":
        return tf.distribute.get_strategy()
    if distribute == "mirrored":
        return tf.distribute.MirroredStrategy()
    _patch_keras_multi_worker_reduce()
    # Ring all-reduce works on CPUs and GPUs alike (NCCL needs GPUs).
    options = tf.distribute.experimental.CommunicationOptions(
        implementation=tf.distribute.experimental.CommunicationImplementation.AUTO)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _patch_keras_multi_worker_reduce():
    """Lets Keras 3's `fit` log scalars under MultiWorkerMirroredStrategy.

    Keras reduces every logged value of a multi-worker step with
    `strategy.reduce("MEAN", v, axis=0)`, which fails for scalars ("Invalid
    reduction dimension 0 for input with 0 dimensions"; tensorflow/tensorflow
    issue 72388, Keras 3 only). Scalars are averaged over the replicas with
    `axis=None` instead; everything else goes to Keras's own function.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer
    original = trainer.reduce_per_replica
    if getattr(original, "ssnas_patched", False):
        return

    def reduce_per_replica(values, strategy, reduction):
        if (reduction not in ("auto", "mean")
                or not trainer._collective_all_reduce_multi_worker(strategy)):
            return original(values, strategy, reduction)

        def reduce(value):
            if strategy.experimental_local_results(value)[0].shape.rank == 0:
                return strategy.reduce("MEAN", value, axis=None)
            return original(value, strategy, reduction)
        return tf.nest.map_structure(reduce, values)

    reduce_per_replica.ssnas_patched = True
    trainer.reduce_per_replica = reduce_per_replica


def follow_scope_strategy(model):
    """Makes a Keras model train under whatever strategy scope `fit` runs in;
    returns the model.

    Keras 3 remembers the strategy of the scope a model was created in, and
    then reduces the first distributed batch with `strategy.reduce` to build
    it, which fails for dict inputs ("Attempt to convert a value ({...:
    PerReplica...}) with an unsupported type"). Forgotten, Keras builds the
    model when it traces the step and uses the strategy of the current scope.
    """
    model._distribute_strategy = None
    return model


def synchronize_batch_norm(model):
    """Makes every BatchNormalization layer in `model` compute its batch
    statistics over all replicas (Keras's `synchronized=True`); returns the
    number of layers changed. Call before the model is first traced."""
    import keras
    count = 0
    for layer in model._flatten_layers(include_self=True, recursive=True):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count


__all__ = ["DISTRIBUTE", "DeviceError", "make_strategy", "follow_scope_strategy",
           "synchronize_batch_norm"]
