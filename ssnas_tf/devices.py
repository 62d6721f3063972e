"""Which devices a run trains on: a `tf.distribute` strategy from a name.

    none          TensorFlow's default strategy (one device)
    mirrored      MirroredStrategy over this machine's GPUs (or its CPU)
    multi-worker  MultiWorkerMirroredStrategy over the workers that the
                  TF_CONFIG environment variable lists; every worker runs the
                  same command with its own task index

Models and optimizers must be created under the strategy's scope (`Run` does
so); NT-Xent then gathers the projections of all replicas
(`ssnas_tf.ssl.distributed`).

A leaf module (it imports only `ssnas_tf.errors`), so every layer may use it.
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


# The private Keras function the multi-worker patch wraps, and the Keras
# versions whose copy of it was read and found to need the patch: the digest
# is of its source (`keras_patch_digest`). tests/test_devices.py fails when the
# installed Keras's source differs, so a new Keras is checked before it is used.
KERAS_PATCH_TARGET = "keras.src.backend.tensorflow.trainer.reduce_per_replica"
KERAS_PATCH_CHECKED = {"3.15.1": "2e7d54b1e6edc29a"}


def keras_patch_digest():
    """SHA-256 (16 hex digits) of the source of Keras's private
    `reduce_per_replica`, or None when Keras has no such function."""
    import hashlib
    import inspect
    try:
        from keras.src.backend.tensorflow import trainer
        source = inspect.getsource(trainer.reduce_per_replica)
    except (ImportError, AttributeError, OSError, TypeError):
        return None
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _keras_patch_applies():
    """(True, "") when the patch fits the installed Keras, else (False, why).

    It fits a Keras 3 whose private `reduce_per_replica(values, strategy,
    reduction)` and `_collective_all_reduce_multi_worker` still exist: the
    names and the signature the patch relies on.
    """
    import inspect

    import keras
    major = keras.__version__.split(".")[0]
    if major != "3":
        return False, f"Keras {keras.__version__} is not Keras 3"
    try:
        from keras.src.backend.tensorflow import trainer
    except ImportError as err:
        return False, f"no keras.src.backend.tensorflow.trainer ({err})"
    function = getattr(trainer, "reduce_per_replica", None)
    if function is None or not hasattr(trainer, "_collective_all_reduce_multi_worker"):
        return False, f"Keras {keras.__version__} has no {KERAS_PATCH_TARGET}"
    params = list(inspect.signature(function).parameters)
    if params != ["values", "strategy", "reduction"]:
        return False, f"{KERAS_PATCH_TARGET} takes {params}"
    return True, ""


def _patch_keras_multi_worker_reduce():
    """Lets Keras 3's `fit` log scalars under MultiWorkerMirroredStrategy.

    Keras reduces every logged value of a multi-worker step with
    `strategy.reduce("MEAN", v, axis=0)`, which fails for scalars ("Invalid
    reduction dimension 0 for input with 0 dimensions"; tensorflow/tensorflow
    issue 72388, Keras 3 only). Scalars are averaged over the replicas with
    `axis=None` instead; everything else goes to Keras's own function.

    The function is private to Keras: the patch is applied only where
    `_keras_patch_applies` finds the names and signature it relies on, and
    otherwise left out with a warning (multi-worker runs then train, but
    Keras may fail to log scalar metrics).

    Returns:
        True when the patch is in place.
    """
    applies, why = _keras_patch_applies()
    if not applies:
        import warnings
        warnings.warn(f"--distribute multi-worker: not patching {KERAS_PATCH_TARGET} "
                      f"({why}); Keras may fail to log scalar metrics "
                      f"(tensorflow/tensorflow issue 72388)", RuntimeWarning, stacklevel=3)
        return False
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer
    original = trainer.reduce_per_replica
    if getattr(original, "ssnas_patched", False):
        return True

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
    return True


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


def strategy_record(strategy, distribute, sync_batch_norm):
    """What results.json records about the devices a step ran on."""
    resolver = getattr(strategy, "cluster_resolver", None)
    workers = (resolver.cluster_spec().num_tasks("worker") or 1
               if resolver is not None and resolver.cluster_spec().as_dict() else 1)
    return {"strategy": distribute, "replicas": strategy.num_replicas_in_sync,
            "workers": workers, "sync_batch_norm": sync_batch_norm}


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
           "strategy_record", "synchronize_batch_norm"]
